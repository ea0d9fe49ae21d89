# cython: language_level=3
"""A thread that writes frames to sockets without holding the GIL (see livetemplate.outbox).

The event loop's thread hands it (socket descriptor, frame) jobs while it goes on running
Python, and starts them in groups: one lock and at most one wake-up a group, not a job (a
lock taken per job made the two threads contend for it at every frame). The thread sends
each frame on a duplicate of the descriptor (so that a socket closed meanwhile cannot hand
its number to a new socket or file) and never waits for a socket: what a socket does not
take at once is left for the loop's thread. Once a socket's frame was not written whole, its
later jobs of the same round are not written at all, so that the loop's thread can write the
rest, in order. ``wait`` ends the round: it waits until every job is done and says which were
not written whole, and how far they got.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.errno cimport EINTR, errno
from libc.stdlib cimport free, malloc


cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_mutex_init(pthread_mutex_t*, void*)
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)
    int pthread_cond_init(pthread_cond_t*, void*)
    int pthread_cond_wait(pthread_cond_t*, pthread_mutex_t*)
    int pthread_cond_signal(pthread_cond_t*)

cdef extern from "<sys/types.h>" nogil:
    ctypedef long ssize_t

cdef extern from "<sys/socket.h>" nogil:
    ssize_t send(int, const void*, size_t, int)
    enum: MSG_DONTWAIT

cdef extern from "<fcntl.h>" nogil:
    int fcntl(int, int, ...)
    enum: F_DUPFD_CLOEXEC

cdef extern from "<unistd.h>" nogil:
    int close(int)


cdef struct Job:
    int key  # the socket's own descriptor: what names it for the round
    int fd  # a duplicate the thread writes to and closes (-1: none could be made)
    const char* data
    Py_ssize_t size
    Py_ssize_t sent


COMPILED = True


cdef class Sender:
    """Jobs for a thread of its own (:meth:`run`); ``capacity`` jobs a round at most."""

    cdef pthread_mutex_t lock
    cdef pthread_cond_t work  # jobs arrived
    cdef pthread_cond_t finished  # the round's last job is done
    cdef Job* jobs
    cdef int* stopped  # keys whose frame was not written whole this round
    cdef Py_ssize_t capacity
    cdef Py_ssize_t handed  # jobs handed this round (the loop's thread only)
    cdef Py_ssize_t count  # of them, those started: the thread's to take (under the lock)
    cdef Py_ssize_t taken, done, stopped_count
    cdef bint idle, waiting
    cdef list frames  # the round's frames, alive until it ends

    def __cinit__(self, Py_ssize_t capacity=1024):
        self.jobs = <Job*>malloc(capacity * sizeof(Job))
        self.stopped = <int*>malloc(capacity * sizeof(int))
        if self.jobs is NULL or self.stopped is NULL:
            raise MemoryError()
        self.capacity = capacity
        pthread_mutex_init(&self.lock, NULL)
        pthread_cond_init(&self.work, NULL)
        pthread_cond_init(&self.finished, NULL)
        self.frames = []

    def __dealloc__(self):
        free(self.jobs)
        free(self.stopped)

    def hand(self, int key, bytes frame) -> bool:
        """Queue ``frame`` for the socket whose descriptor is ``key``, to be written once
        started (:meth:`start`); False (nothing queued) when the round is full."""
        if self.handed == self.capacity:
            return False
        cdef int fd = fcntl(key, F_DUPFD_CLOEXEC, 0)
        self.frames.append(frame)
        cdef Job* job = &self.jobs[self.handed]  # past ``count``: the thread does not read it
        job.key = key
        job.fd = fd
        job.data = PyBytes_AS_STRING(frame)
        job.size = PyBytes_GET_SIZE(frame)
        job.sent = 0
        self.handed += 1
        return True

    def start(self) -> None:
        """Have the thread write the jobs handed since the last start."""
        if self.handed == self.count:
            return
        pthread_mutex_lock(&self.lock)
        self.count = self.handed
        if self.idle:
            pthread_cond_signal(&self.work)
        pthread_mutex_unlock(&self.lock)

    def busy(self) -> bool:
        """Whether a job handed this round is not done yet."""
        pthread_mutex_lock(&self.lock)
        cdef bint busy = self.done < self.handed
        pthread_mutex_unlock(&self.lock)
        return busy

    def wait(self) -> list:
        """End the round: start what is not started, wait until every job handed is done,
        and return the (index, bytes written) of those not written whole, in the order they
        were handed."""
        cdef Py_ssize_t i
        self.start()
        with nogil:
            pthread_mutex_lock(&self.lock)
            self.waiting = True
            while self.done < self.count:
                pthread_cond_wait(&self.finished, &self.lock)
            self.waiting = False
            pthread_mutex_unlock(&self.lock)
        short = [(i, self.jobs[i].sent) for i in range(self.count) if self.jobs[i].sent < self.jobs[i].size]
        pthread_mutex_lock(&self.lock)
        self.handed = self.count = self.taken = self.done = self.stopped_count = 0
        pthread_mutex_unlock(&self.lock)
        self.frames = []
        return short

    def run(self) -> None:
        """The thread's body: write jobs as they come, for ever."""
        with nogil:
            self._serve()

    cdef void _serve(self) noexcept nogil:
        cdef Py_ssize_t first, end, i
        pthread_mutex_lock(&self.lock)
        while True:
            while self.taken == self.count:
                self.idle = True
                pthread_cond_wait(&self.work, &self.lock)
            self.idle = False
            first, end = self.taken, self.count  # every job started so far, in one go
            self.taken = end
            pthread_mutex_unlock(&self.lock)
            for i in range(first, end):
                self._write(&self.jobs[i])
            pthread_mutex_lock(&self.lock)
            self.done = end
            if self.waiting and self.done == self.count:
                pthread_cond_signal(&self.finished)

    cdef void _write(self, Job* job) noexcept nogil:
        cdef ssize_t n
        cdef Py_ssize_t i
        for i in range(self.stopped_count):
            if self.stopped[i] == job.key:  # an earlier frame of this socket is not all out
                if job.fd >= 0:
                    close(job.fd)
                return
        if job.fd >= 0:
            while job.sent < job.size:
                n = send(job.fd, job.data + job.sent, job.size - job.sent, MSG_DONTWAIT)
                if n > 0:
                    job.sent += n
                elif n < 0 and errno == EINTR:
                    continue
                else:
                    break
            close(job.fd)
        if job.sent < job.size:
            self.stopped[self.stopped_count] = job.key
            self.stopped_count += 1
