# Compiled loops over sliding windows of (N, C, H, W) images: what convolution, unfold/fold and
# pooling are made of (windows.pyx). Nothing here knows about Tensors: conv.pyx (the ops) and
# rules.pyx (their derivatives) pass arrays. Every function checks that the arrays it is given
# have the sizes the geometry implies (ValueError otherwise), so no call reads or writes out of
# bounds; the ops check the user's shapes first and give PyTorch's errors.

# The geometry of a 2-D window sweep: image size, kernel, stride, padding before each axis
# (padding after is implied by the output size), dilation, and the output grid.
ctypedef struct Grid2d:
    Py_ssize_t C, H, W          # channels and image size
    Py_ssize_t kh, kw           # kernel
    Py_ssize_t sh, sw           # stride
    Py_ssize_t ph, pw           # padding before (top, left)
    Py_ssize_t dh, dw           # dilation
    Py_ssize_t oh, ow           # output grid

# A Grid2d from the tuple (C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow) that nodes save.
cdef Grid2d grid_from(tuple g) except *

# Column layouts of im2col/col2im: element (row r, image n, position l) of the columns lives at
#   CONV_LAYOUT    r * (N * L) + n * L + l      (one GEMM over the whole batch: rows x (N*L))
#   BATCH_LAYOUT   n * (R * L) + r * L + l      (torch.nn.functional.unfold's (N, R, L))
# where R = C * kh * kw (row r = (c * kh + i) * kw + j) and L = oh * ow.
cdef enum:
    CONV_LAYOUT = 0
    BATCH_LAYOUT = 1

# The columns of x (N, C, H, W), a C-contiguous float32/float64 array: zeros where a window
# reaches into the padding.
cdef object im2col(object x, Grid2d *g, int layout)
# The adjoint: the (N, C, H, W) image whose pixels sum the columns that read them.
cdef object col2im(object cols, Grid2d *g, Py_ssize_t n, int layout)

# Pooling over windows described per axis: output row i reads image rows hstart[i] + k * dh for
# k < hcount[i] (all inside the image: the caller clips windows to it), likewise for columns.
# Returns (max values, flat indices h * W + w into each (n, c) plane), NaN winning as in PyTorch.
cdef tuple pool_max(object x, object hstart, object hcount, object wstart, object wcount,
                    Py_ssize_t dh, Py_ssize_t dw)
# The gradient of the max: g (N, C, oh, ow) added at the indices into zeros (N, C, H, W).
cdef object pool_max_grad(object g, object idx, Py_ssize_t h, Py_ssize_t w)
# Window sums divided by divisor (oh, ow), and the adjoint (g / divisor spread over windows).
cdef object pool_avg(object x, object hstart, object hcount, object wstart, object wcount,
                     object divisor)
cdef object pool_avg_grad(object g, object hstart, object hcount, object wstart, object wcount,
                          object divisor, Py_ssize_t h, Py_ssize_t w)
