# What rules.pyx uses of conv.pyx: the GEMM steps of the convolutions, shared by the ops and the
# derivative rules (the tangent of a convolution is a convolution).

# The convolution (N, O, L) (a transposed view) from the columns (C*kh*kw, N*L) of im2col's
# CONV_LAYOUT and the weight (O, C // groups, kh, kw).
cdef object conv_gemm(object cols, object wv, Py_ssize_t groups, Py_ssize_t n,
                      Py_ssize_t positions)
# (N, C, H, W) as (C, N*H*W).
cdef object channels_by_batch(object v)
# The columns (O*kh*kw, N*H*W) a transposed convolution of xcols (C, N*H*W) with the weight
# (C, O // groups, kh, kw) spreads over its output (col2im's CONV_LAYOUT).
cdef object transpose_columns(object xcols, object wv, Py_ssize_t groups)
