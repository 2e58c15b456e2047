#pragma once
// Files lathe writes and reads: safetensors and atomic replacement (lathe/safetensors.h, which
// includes nothing of models or data) and model bundles (lathe/bundle.h).
#include "lathe/bundle.h"
#include "lathe/safetensors.h"
