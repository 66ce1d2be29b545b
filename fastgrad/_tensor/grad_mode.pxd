# Grad mode: read by every op of the tensor engine to decide whether to record.
cdef bint grad_enabled      # False inside a no_grad() block
