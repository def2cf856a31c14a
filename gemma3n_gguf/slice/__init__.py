"""MatFormer Mix-n-Match: slice a Gemma 3n checkpoint (E4B) to any size, as a GGUF or a checkpoint."""

from gemma3n_gguf.slice.api import SliceResult, WriteOptions, open_slice, plan_slice, slice_model, write_slice

__all__ = ["SliceResult", "WriteOptions", "open_slice", "plan_slice", "slice_model", "write_slice"]
