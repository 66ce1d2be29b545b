# Grad mode: read by every op of the tensor engine to decide whether to record. Per thread, as
# in PyTorch: a no_grad() block in one thread does not stop recording in another, and a new
# thread starts with grad enabled. The flag is a C thread-local variable in grad_mode.pyx, so
# other modules read it through this function (a variable cimported from another module is
# shared through its address, which would be the importing thread's copy only).
cdef bint grad_enabled() noexcept nogil     # False inside a no_grad() block of this thread
