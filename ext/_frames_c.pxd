# Static types for the compiled build of livetemplate/_frames_py.py (Cython pure-Python
# mode): the build copies that module next to this file as _frames_c.py.

cimport cython

cdef object _encoder
cdef tuple _SHORT_HEADERS

cpdef bytes encode_frame(object tree, object meta)
@cython.locals(size=Py_ssize_t)
cpdef bytes websocket_text_frame(bytes payload)
