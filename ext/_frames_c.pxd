# Static types for the compiled build of livetemplate/_frames_py.py (Cython pure-Python
# mode): the build copies that module next to this file as _frames_c.py.

cdef object _encoder

cpdef bytes encode_frame(object tree, object meta)
cpdef bytes websocket_text_frame(bytes payload)
