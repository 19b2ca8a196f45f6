/* nccl.cpp: the NCCL subset over the simulator's virtual devices (pending). */
#include "internal.h"
