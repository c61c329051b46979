/* LAB SIMULATION - stand-in for NVIDIA's nccl.h: the version macros only. */
#ifndef NCCL_H_
#define NCCL_H_
#define NCCL_MAJOR @MAJOR@
#define NCCL_MINOR @MINOR@
#define NCCL_PATCH @PATCH@
#define NCCL_SUFFIX ""
#define NCCL_VERSION_CODE (@MAJOR@ * 10000 + @MINOR@ * 100 + @PATCH@)
#define NCCL_VERSION(X,Y,Z) (((X) <= 2 && (Y) <= 8) ? (X) * 1000 + (Y) * 100 + (Z) : (X) * 10000 + (Y) * 100 + (Z))
/* built for CUDA @CUDA_MAJOR@.@CUDA_MINOR@ */
#endif
