"""The send thread's own tests need the compiled build; the pure install has no thread to test
(its writes stay on the loop's thread, which ``test_send_thread.py`` covers on both builds)."""

from tests.support.engines import NO_EXTENSIONS

collect_ignore = ["test_send_thread_compiled.py"] if NO_EXTENSIONS else []
