"""Validate GGUF files against the reference checkpoint with llama-perplexity's protocol.

:class:`Validator` holds one reference, one text and one protocol and validates any number
of candidates. For each it checks the GGUF against the reference's metadata (no model
loaded yet), tokenizes the text (:mod:`.tokens`), cuts llama-perplexity's windows
(:mod:`.windows`), makes sure the reference's scored rows are in the compact cache
(:mod:`.reference_cache`, keyed by the checkpoint's content hash, token ids, n_ctx, BOS and
reference settings) and then runs only the candidate (:mod:`.scoring`). The transformers pass
runs once per (checkpoint, text, settings), whichever process asks first; N candidates cost
one reference pass plus N candidate passes, and only one model is in memory at a time.

Progress is reported through ``on_progress(phase, done, total)`` in windows, with phase
``"reference"`` for the transformers pass and ``"candidate"`` for llama.cpp.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gemma3n_gguf.core.errors import GGUFFileError, ValidationError
from gemma3n_gguf.core.memory import measure_peak_rss
from gemma3n_gguf.reference.mode import AUTO, make_reference_runner, resolve_reference_mode
from gemma3n_gguf.validate.compat import GGUFModelInfo, ReferenceInfo, compared_vocab
from gemma3n_gguf.reference.evaltext import EvalText, load_eval_text
from gemma3n_gguf.reference.identity import checkpoint_content_hash
from gemma3n_gguf.validate.multimodal.media import media_parity, read_media
from gemma3n_gguf.validate.metrics.kld import MIN_TOKENS_FOR_STATISTICS
from gemma3n_gguf.reference.cache import CachedReference, ReferenceCache, reference_key
from gemma3n_gguf.validate.report import ReferencePass, ValidationReport
from gemma3n_gguf.reference.runners import transformers_settings
from gemma3n_gguf.validate.metrics.scoring import score_candidate
from gemma3n_gguf.validate.tokens import (
    SOURCE_GGUF,
    SOURCE_REFERENCE,
    TokenizerAgreement,
    compare_tokenizers,
    gguf_token_ids,
    has_tokenizer,
    reference_token_ids,
)
from gemma3n_gguf.reference.windows import WindowPlan, plan_windows

PhaseProgress = Callable[[str, int, int], None]
REFERENCE_PHASE = "reference"
CANDIDATE_PHASE = "candidate"

PathLike = str | os.PathLike[str]


class Validator:
    """Validates candidate GGUFs against one reference checkpoint on one text.

    ``text``: a file path, an :class:`EvalText` or ``None`` for the packaged default.
    ``chunks``: at most this many windows (``None``: all). ``cache_dir``: where reference
    passes are cached (default ``~/.cache/gemma3n-gguf/reference``). ``align_vocab``: compare
    a GGUF whose vocabulary size differs from the reference's over the shared ids instead of
    refusing it (see :mod:`.compat`). ``kv_cache_f32``: llama.cpp with an F32 KV cache instead
    of llama-perplexity's F16 default. ``repack``: llama.cpp's CPU weight repacking (its default);
    False runs the candidate as ``--no-repack`` does, from the mapped file without a repacked copy
    of its quantized matrices (less memory; K-quant results differ slightly). ``reference_mode``: ``auto``, ``memory`` or ``streamed``
    (:mod:`gemma3n_gguf.reference.mode`); the report says which ran and its peak memory.
    """

    def __init__(
        self,
        reference_dir: PathLike,
        *,
        text: PathLike | EvalText | None = None,
        n_ctx: int = 512,
        chunks: int | None = None,
        cache_dir: PathLike | None = None,
        align_vocab: bool = False,
        kv_cache_f32: bool = False,
        repack: bool = True,
        n_threads: int | None = None,
        on_progress: PhaseProgress | None = None,
        reference_mode: str = AUTO,
    ) -> None:
        self.reference = ReferenceInfo.read(reference_dir)
        self.reference_mode = resolve_reference_mode(reference_mode, self.reference.directory)
        self.text = load_eval_text(text)
        self.n_ctx = n_ctx
        self.chunks = None if chunks is not None and chunks < 0 else chunks  # -1: all, as llama-perplexity
        self.cache = ReferenceCache(cache_dir)
        self.align_vocab = align_vocab
        self.kv_cache_f32 = kv_cache_f32
        self.repack = repack
        self.n_threads = n_threads
        self.on_progress = on_progress
        # every byte of the checkpoint: a fine-tune never reuses its base model's cached reference
        self.fingerprint = checkpoint_content_hash(self.reference.directory, self.cache.directory / "content-hashes.json")
        self.reference_runs = 0
        """How many times this validator ran transformers (0 when every pass came from the cache)."""
        self._reference_ids: NDArray[np.int32] | None = None

    def validate(
        self,
        model_gguf: PathLike,
        *,
        mmproj: PathLike | None = None,
        images: Sequence[PathLike] = (),
        audios: Sequence[PathLike] = (),
    ) -> ValidationReport:
        """Compare one GGUF with the reference; raises a typed error if they cannot be compared."""
        image_inputs, audio_inputs = read_media(images, audios)
        if (image_inputs or audio_inputs) and mmproj is None:
            raise ValidationError("--image/--audio need the projector GGUF: pass --mmproj")
        if mmproj is not None and not Path(mmproj).is_file():
            raise GGUFFileError(f"projector {mmproj} does not exist")
        model = GGUFModelInfo.read(model_gguf)
        n_vocab = compared_vocab(model, self.reference, align_vocab=self.align_vocab)
        ids, source = self._token_ids(model.path)
        plan = self._plan(ids, n_vocab)
        agreement = compare_tokenizers(ids, gguf_token_ids(model.path, self.text.text), source)
        cached, reference_pass = self._reference_rows(plan, n_vocab)
        started = time.perf_counter()
        scores = score_candidate(
            model.path, plan, cached, n_vocab, kv_cache_f32=self.kv_cache_f32, repack=self.repack,
            n_threads=self.n_threads, on_progress=self._progress(CANDIDATE_PHASE),
        )
        candidate_seconds = time.perf_counter() - started
        media = media_parity(model.path, _optional_path(mmproj), self.reference.directory,
                             image_inputs, audio_inputs)
        kld = scores.kld.finish()
        return ValidationReport(
            model=str(model.path), model_bytes=model.file_bytes, bits_per_weight=model.bits_per_weight,
            reference=reference_pass, text_name=self.text.name, text_sha256=self.text.sha256,
            n_text_tokens=len(ids), tokenizer=agreement, n_ctx=plan.n_ctx, n_windows=len(plan),
            n_vocab_compared=n_vocab, vocab_aligned=n_vocab != max(model.n_vocab, self.reference.n_vocab),
            kld=kld, confident_top1=scores.confident_top1.finish(), candidate_seconds=candidate_seconds,
            media=tuple(media), warnings=tuple(self._warnings(model, n_vocab, agreement, kld.n_tokens)),
            weight_repack=scores.weight_repack,
        )

    # -- tokens and windows ---------------------------------------------------------------
    def _token_ids(self, model_gguf: Path) -> tuple[NDArray[np.int32], str]:
        if not has_tokenizer(self.reference.directory):
            return gguf_token_ids(model_gguf, self.text.text), SOURCE_GGUF
        if self._reference_ids is None:
            self._reference_ids = reference_token_ids(self.reference.directory, self.text.text)
        return self._reference_ids, SOURCE_REFERENCE

    def _plan(self, ids: NDArray[np.int32], n_vocab: int) -> WindowPlan:
        # llama-perplexity writes BOS over each window's first token only if the vocabulary adds BOS.
        bos = self.reference.bos_id
        adds_bos = bos is not None and len(ids) > 0 and int(ids[0]) == bos
        plan = plan_windows(ids, self.n_ctx, bos_id=bos if adds_bos else None, chunks=self.chunks)
        highest = int(plan.stream_token_ids.max())
        if highest >= n_vocab:
            raise ValidationError(
                f"the text holds token id {highest}, outside the {n_vocab:,} ids compared "
                "(multimodal ids cannot be compared over an aligned vocabulary)"
            )
        return plan

    # -- the reference pass -----------------------------------------------------------------
    def _reference_rows(self, plan: WindowPlan, n_vocab: int) -> tuple[CachedReference, ReferencePass]:
        settings = {**transformers_settings(), "n_vocab_compared": n_vocab}
        key = reference_key(self.fingerprint, plan, settings)
        started = time.perf_counter()
        cached = self.cache.load(key)
        from_cache = cached is not None
        mode = peak_rss = None
        if cached is None:
            with measure_peak_rss() as peak:
                self._run_reference(key, plan, n_vocab, settings)
            mode, peak_rss = self.reference_mode.mode, peak.peak_rss_bytes
            cached = self.cache.load(key)
            if cached is None:
                raise ValidationError(f"the reference cache {self.cache.path_for(key)} cannot be read back")
        seconds = time.perf_counter() - started
        return cached, ReferencePass(str(self.reference.directory), self.fingerprint, str(cached.path),
                                     from_cache, seconds, mode, peak_rss)

    def _run_reference(self, key: str, plan: WindowPlan, n_vocab: int, settings: dict) -> None:
        progress = self._progress(REFERENCE_PHASE)
        if progress is not None:
            progress(0, len(plan))  # the bar appears while the model loads
        runner = make_reference_runner(self.reference.directory, self.reference_mode.mode, n_threads=self.n_threads)
        self.reference_runs += 1
        first_row = plan.n_ctx // 2
        windows = runner.iter_window_logits(plan.evaluated_windows(), first_row=first_row, on_progress=progress)
        with self.cache.create(key, plan, n_vocab, settings) as writer:
            for logits, window in zip(windows, plan):  # runner first: see scoring.score_candidate
                writer.add_window(window.scored_logits(logits, first_row=first_row)[:, :n_vocab])
        del runner, windows
        gc.collect()  # free the reference before llama.cpp loads the candidate

    # -- helpers ------------------------------------------------------------------------------
    def _progress(self, phase: str) -> Callable[[int, int], None] | None:
        if self.on_progress is None:
            return None
        callback = self.on_progress
        return lambda done, total: callback(phase, done, total)

    def _warnings(
        self, model: GGUFModelInfo, n_vocab: int, agreement: TokenizerAgreement, n_tokens: int
    ) -> list[str]:
        found = []
        if not agreement.agree:
            found.append(
                f"the GGUF's tokenizer differs from the reference's from token {agreement.first_difference} "
                f"on ({agreement.n_candidate} vs {agreement.n_reference} ids); both models were evaluated "
                "on the reference's ids, so the numbers measure the weights, not the tokenizer"
            )
        if n_vocab != max(model.n_vocab, self.reference.n_vocab):
            found.append(
                f"vocabularies aligned: the GGUF has {model.n_vocab:,} ids, the reference "
                f"{self.reference.n_vocab:,}; both were compared over the first {n_vocab:,}, renormalised"
            )
        if n_tokens < MIN_TOKENS_FOR_STATISTICS:
            found.append(
                f"only {n_tokens} scored tokens (llama-perplexity needs {MIN_TOKENS_FOR_STATISTICS} "
                "for its statistics): use a longer text, more --chunks or a smaller --ctx"
            )
        return found


def validate(
    model_gguf: PathLike,
    reference_dir: PathLike,
    *,
    text: PathLike | EvalText | None = None,
    n_ctx: int = 512,
    chunks: int | None = None,
    cache_dir: PathLike | None = None,
    on_progress: PhaseProgress | None = None,
    mmproj: PathLike | None = None,
    images: Sequence[PathLike] = (),
    audios: Sequence[PathLike] = (),
    align_vocab: bool = False,
    kv_cache_f32: bool = False,
    repack: bool = True,
    reference_mode: str = AUTO,
) -> ValidationReport:
    """Validate one GGUF against its reference checkpoint (see :class:`Validator`)."""
    validator = Validator(
        reference_dir, text=text, n_ctx=n_ctx, chunks=chunks, cache_dir=cache_dir,
        align_vocab=align_vocab, kv_cache_f32=kv_cache_f32, repack=repack, on_progress=on_progress,
        reference_mode=reference_mode,
    )
    return validator.validate(model_gguf, mmproj=mmproj, images=images, audios=audios)


def _optional_path(path: PathLike | None) -> Path | None:
    return None if path is None else Path(path)
