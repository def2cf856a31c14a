"""llama.cpp's multimodal runtime (mtmd) through llama-cpp-python's ``mtmd_cpp`` bindings.

:class:`MtmdSession` loads a text GGUF and its projector GGUF the way ``llama-mtmd-cli``
does and exposes the two things validation compares with transformers: the embeddings
mtmd makes of an image or a waveform, and the logits of every text position of a prompt
holding one. Images are RGB ``uint8`` arrays of shape (height, width, 3); audio is a mono
``float32`` waveform at :attr:`MtmdSession.audio_sample_rate` (Gemma 3n audio needs the
patched runtime, :mod:`gemma3n_gguf.runtime.build`).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gemma3n_gguf.core.errors import GGUFFileError, RuntimeUnavailableError, ValidationError

IMAGE_POSITION = -1  # token id standing for a media (image or audio) embedding position in PromptEval.tokens
Media = NDArray[np.uint8] | NDArray[np.float32]  # an RGB image or a mono waveform


@dataclass(frozen=True)
class PromptEval:
    """A prompt as llama.cpp evaluated it."""

    tokens: NDArray[np.int64]  # every position; IMAGE_POSITION where an image or audio embedding sits
    text_positions: NDArray[np.int64]  # positions whose logits were read
    logits: NDArray[np.float32]  # (len(text_positions), n_vocab): row i = logits after that token


def _bindings() -> tuple[Any, Any]:
    try:
        import llama_cpp
        from llama_cpp import mtmd_cpp
    except ImportError as exc:
        raise RuntimeUnavailableError(f"llama-cpp-python with mtmd is needed: {exc}") from exc
    return llama_cpp, mtmd_cpp


# mtmd logs every tensor and chunk on stderr; a no-op callback keeps the library silent.
_SILENT_LOG = None


def _silence(llama_cpp: Any, mtmd_cpp: Any) -> None:
    global _SILENT_LOG
    if _SILENT_LOG is None:
        _SILENT_LOG = llama_cpp.llama_log_callback(lambda level, text, data: None)
        mtmd_cpp.mtmd_log_set(_SILENT_LOG, None)
        mtmd_cpp.mtmd_helper_log_set(_SILENT_LOG, None)


def _audio_features_function(mtmd: Any) -> Any:
    """``mtmd_audio_features`` of the loaded libmtmd: exported by the patched runtime only."""
    try:
        function = mtmd._libmtmd.mtmd_audio_features
    except AttributeError:
        raise RuntimeUnavailableError("this libmtmd has no mtmd_audio_features: build the patched runtime "
                                      "(gemma3n-gguf runtime build) and load it with LLAMA_CPP_LIB_PATH "
                                      "and MTMD_CPP_LIB") from None
    function.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                         ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.POINTER(ctypes.c_int32)]
    function.restype = ctypes.c_int32
    return function


class MtmdSession:
    """A text model and its projector loaded together, CPU only.

    ``kv_cache_f32`` keeps K/V in F32 so prompt logits differ from transformers only by
    what the weights and kernels change (the default F16 cache rounds them).
    """

    def __init__(
        self,
        text_gguf: str | os.PathLike[str],
        mmproj_gguf: str | os.PathLike[str],
        *,
        n_ctx: int = 1024,
        n_batch: int = 512,
        n_threads: int | None = None,
        kv_cache_f32: bool = True,
    ) -> None:
        llama_cpp, mtmd = _bindings()
        self._llama_cpp, self._mtmd = llama_cpp, mtmd
        for path in (text_gguf, mmproj_gguf):
            if not Path(path).is_file():
                raise GGUFFileError(f"{path} does not exist")
        _silence(llama_cpp, mtmd)
        kv_type = llama_cpp.GGML_TYPE_F32 if kv_cache_f32 else None
        threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self._n_batch = n_batch
        self._llm = llama_cpp.Llama(model_path=str(text_gguf), n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch,
                                    n_threads=threads, n_threads_batch=threads, type_k=kv_type, type_v=kv_type,
                                    verbose=False)
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.n_threads = threads
        params.warmup = False
        self._ctx = mtmd.mtmd_init_from_file(str(mmproj_gguf).encode(), self._llm.model, params)
        if not self._ctx:
            self._llm.close()
            raise GGUFFileError(f"llama.cpp's mtmd cannot load {mmproj_gguf} with {text_gguf} "
                                "(run with the same files through llama-mtmd-cli to see its log)")
        self.n_embd = int(llama_cpp.llama_model_n_embd_inp(self._llm.model))
        self.n_vocab = int(self._llm.n_vocab())

    @property
    def supports_vision(self) -> bool:
        return bool(self._mtmd.mtmd_support_vision(self._ctx))

    @property
    def supports_audio(self) -> bool:
        return bool(self._mtmd.mtmd_support_audio(self._ctx))

    @property
    def audio_sample_rate(self) -> int:
        return int(self._mtmd.mtmd_get_audio_sample_rate(self._ctx))

    # -- inputs -----------------------------------------------------------------------
    def _bitmap(self, media: Media) -> Any:
        mtmd = self._mtmd
        if media.dtype == np.float32 and media.ndim == 1:
            if not self.supports_audio:
                raise RuntimeUnavailableError("this mtmd runs no audio encoder of this projector (stock llama.cpp has "
                                              "none for Gemma 3n: load the patched runtime, python -m "
                                              "gemma3n_gguf.runtime.build)")
            samples = np.ascontiguousarray(media)
            return mtmd.mtmd_bitmap_init_from_audio(len(samples), samples.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        if media.dtype != np.uint8 or media.ndim != 3 or media.shape[2] != 3:
            raise ValidationError("media are uint8 (height, width, 3) images or float32 mono waveforms, "
                                  f"got {media.dtype} {media.shape}")
        height, width = media.shape[:2]
        pixels = np.ascontiguousarray(media)
        return mtmd.mtmd_bitmap_init(width, height, pixels.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))

    def _tokenize(self, prompt: str, media: Media) -> Any:
        """mtmd chunks of ``prompt``, whose media marker is replaced by ``media``."""
        mtmd = self._mtmd
        bitmap = self._bitmap(media)
        chunks = mtmd.mtmd_input_chunks_init()
        data = prompt.encode("utf-8")
        text = mtmd.mtmd_input_text(text=data, text_len=len(data), add_special=True, parse_special=True)
        try:
            status = mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap), 1)
        finally:
            mtmd.mtmd_bitmap_free(bitmap)
        if status != 0:
            mtmd.mtmd_input_chunks_free(chunks)
            raise ValidationError(f"mtmd could not tokenize the prompt (status {status}); "
                                  f"it must hold exactly one {mtmd.mtmd_default_marker().decode()} marker")
        return chunks

    def _chunk_list(self, chunks: Any) -> list[Any]:
        return [self._mtmd.mtmd_input_chunks_get(chunks, i) for i in range(self._mtmd.mtmd_input_chunks_size(chunks))]

    def _text_tokens(self, chunk: Any) -> list[int]:
        count = ctypes.c_size_t()
        pointer = self._mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
        return [int(pointer[i]) for i in range(count.value)]

    def _is_text(self, chunk: Any) -> bool:
        return self._mtmd.mtmd_input_chunk_get_type(chunk) == self._mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT

    # -- media embeddings -------------------------------------------------------------
    def image_embeddings(self, image: NDArray[np.uint8]) -> NDArray[np.float32]:
        """(n_tokens, n_embd) embeddings mtmd feeds the text model for ``image``."""
        return self._media_embeddings(image)

    def audio_embeddings(self, waveform: NDArray[np.floating]) -> NDArray[np.float32]:
        """(n_tokens, n_embd) embeddings mtmd feeds the text model for a mono ``waveform``
        (only its first chunk, which for Gemma 3n is the first 30 s)."""
        return self._media_embeddings(np.asarray(waveform, np.float32))

    def audio_features(self, waveform: NDArray[np.floating]) -> NDArray[np.float32]:
        """(frames, mel bins) input features of the audio encoder for ``waveform``, from the
        patched runtime's ``mtmd_audio_features`` (its first chunk, as the encoder gets it)."""
        function = _audio_features_function(self._mtmd)
        samples = np.ascontiguousarray(waveform, np.float32)
        n_mel = ctypes.c_int32()
        as_float = samples.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        n_frames = function(self._ctx, as_float, len(samples), None, 0, ctypes.byref(n_mel))
        if n_frames < 0:
            raise ValidationError(f"mtmd could not preprocess {len(samples)} audio samples")
        out = np.zeros(n_mel.value * n_frames, np.float32)
        function(self._ctx, as_float, len(samples), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.size,
                 ctypes.byref(n_mel))
        return out.reshape(n_mel.value, n_frames).T.copy()

    def _media_embeddings(self, media: Media) -> NDArray[np.float32]:
        mtmd = self._mtmd
        chunks = self._tokenize(mtmd.mtmd_default_marker().decode(), media)
        try:
            chunk = next(c for c in self._chunk_list(chunks) if not self._is_text(c))
            n_tokens = int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))
            if mtmd.mtmd_encode_chunk(self._ctx, chunk) != 0:
                raise ValidationError("mtmd failed to encode the media")
            out = np.ctypeslib.as_array(mtmd.mtmd_get_output_embd(self._ctx), shape=(n_tokens * self.n_embd,))
            return out.reshape(n_tokens, self.n_embd).copy()  # the buffer is reused by the next encode
        finally:
            mtmd.mtmd_input_chunks_free(chunks)

    # -- prompts ----------------------------------------------------------------------
    def prompt_logits(self, prompt: str, media: Media) -> PromptEval:
        """Evaluate ``prompt`` (one media marker, replaced by ``media``: an image or a
        waveform) from an empty cache; logits are read at every text position."""
        llama_cpp = self._llama_cpp
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._llm.ctx), True)
        chunks = self._tokenize(prompt, media)
        tokens: list[int] = []
        text_positions: list[int] = []
        rows: list[NDArray[np.float32]] = []
        try:
            for chunk in self._chunk_list(chunks):
                if self._is_text(chunk):
                    ids = self._text_tokens(chunk)
                    rows += self._decode_text(ids, n_past=len(tokens))
                    text_positions += range(len(tokens), len(tokens) + len(ids))
                    tokens += ids
                else:
                    tokens += [IMAGE_POSITION] * self._decode_media(chunk, n_past=len(tokens))
        finally:
            self._mtmd.mtmd_input_chunks_free(chunks)
        return PromptEval(np.array(tokens, np.int64), np.array(text_positions, np.int64), np.stack(rows))

    def _decode_text(self, ids: list[int], n_past: int) -> list[NDArray[np.float32]]:
        llama_cpp = self._llama_cpp
        rows = []
        for start in range(0, len(ids), self._n_batch):
            part = ids[start : start + self._n_batch]
            batch = llama_cpp.llama_batch_init(len(part), 0, 1)
            try:
                batch.n_tokens = len(part)
                for i, token in enumerate(part):
                    batch.token[i] = token
                    batch.pos[i] = n_past + start + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = 1
                if llama_cpp.llama_decode(self._llm.ctx, batch) != 0:
                    raise ValidationError("llama.cpp failed to decode the prompt's text")
                for i in range(len(part)):
                    row = llama_cpp.llama_get_logits_ith(self._llm.ctx, i)
                    rows.append(np.ctypeslib.as_array(row, shape=(self.n_vocab,)).copy())
            finally:
                llama_cpp.llama_batch_free(batch)
        return rows

    def _decode_media(self, chunk: Any, n_past: int) -> int:
        new_n_past = self._llama_cpp.llama_pos(0)
        status = self._mtmd.mtmd_helper_eval_chunk_single(self._ctx, self._llm.ctx, chunk, n_past, 0,
                                                          self._n_batch, False, ctypes.byref(new_n_past))
        if status != 0:
            raise ValidationError(f"mtmd failed to encode or decode the media (status {status})")
        return int(new_n_past.value) - n_past

    def close(self) -> None:
        if self._ctx:
            self._mtmd.mtmd_free(self._ctx)
            self._ctx = None
        self._llm.close()

    def __enter__(self) -> MtmdSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
