"""Gemma 3n's chat format as an Ollama TEMPLATE (Go text/template), checked against the GGUF's Jinja.

Ollama fills ``.Messages`` with the request's messages (Role, Content; a Modelfile SYSTEM becomes
a leading system message). Gemma's own template folds a leading system message into the first
user turn, ``system + "\\n\\n" + user``; Ollama's library gemma3n template renders it as a turn of its
own instead, which this template does not. A final assistant message is left open so the model
continues it (Ollama's prefill; transformers' ``continue_final_message``); otherwise the template
ends with the generation prompt. BOS is not in the template: the runtime adds it, as
``tokenizer.ggml.add_bos_token`` says.

Only Go's built-in functions are used (``eq``, ``ne``, ``and``, ``not``, ``len``, ``slice``), so no
Ollama-specific function is needed. Go templates have no ``trim``: Gemma's Jinja strips each
message, the TEMPLATE passes content as Ollama gives it, so the two agree when messages carry no
leading or trailing whitespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from gemma3n_gguf.core.errors import PackageError

END_OF_TURN = "<end_of_turn>"

GEMMA3N_TEMPLATE = """\
{{- $system := "" }}{{ $folded := false }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if and (eq $i 0) (eq $m.Role "system") }}{{ $system = $m.Content }}{{ $folded = true }}
{{- else if eq $m.Role "assistant" }}<start_of_turn>model
{{ $m.Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- else }}<start_of_turn>user
{{ if $folded }}{{ $system }}

{{ $folded = false }}{{ end }}{{ $m.Content }}<end_of_turn>
{{ end }}
{{- if and $last (ne $m.Role "assistant") }}<start_of_turn>model
{{ end }}
{{- end }}"""


@dataclass(frozen=True)
class Probe:
    """A conversation and what Gemma's chat template renders for it (without BOS), written out by hand."""

    name: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    expected: str

    @property
    def continues_assistant(self) -> bool:
        return self.messages[-1][0] == "assistant"

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


PROBES: tuple[Probe, ...] = (
    Probe("single turn", (("user", "Hi!"),),
          "<start_of_turn>user\nHi!<end_of_turn>\n<start_of_turn>model\n"),
    Probe("system + user", (("system", "Answer briefly."), ("user", "What is 2+2?")),
          "<start_of_turn>user\nAnswer briefly.\n\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n"),
    Probe("multi-turn", (("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3+3?")),
          "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n"
          "<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n"),
    Probe("multi-turn with system",
          (("system", "You are terse."), ("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3+3?")),
          "<start_of_turn>user\nYou are terse.\n\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n"
          "<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n"),
    Probe("assistant last", (("user", "Write a haiku."), ("assistant", "Autumn moonlight")),
          "<start_of_turn>user\nWrite a haiku.<end_of_turn>\n<start_of_turn>model\nAutumn moonlight"),
    Probe("system, assistant last",
          (("system", "Be poetic."), ("user", "Write a haiku."), ("assistant", "Autumn moonlight")),
          "<start_of_turn>user\nBe poetic.\n\nWrite a haiku.<end_of_turn>\n<start_of_turn>model\nAutumn moonlight"),
    Probe("empty system", (("system", ""), ("user", "Hi!")),
          "<start_of_turn>user\n\n\nHi!<end_of_turn>\n<start_of_turn>model\n"),
    Probe("multi-line content", (("user", "Line one.\nLine two: \"quoted\" {{ braces }}"),),
          "<start_of_turn>user\nLine one.\nLine two: \"quoted\" {{ braces }}<end_of_turn>\n<start_of_turn>model\n"),
)


def render_jinja(chat_template: str, bos_token: str, probe: Probe) -> str:
    """What transformers' ``apply_chat_template`` renders for ``probe`` with ``chat_template``."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[probe.as_dicts()], chat_template=chat_template, bos_token=bos_token,
        add_generation_prompt=not probe.continues_assistant, continue_final_message=probe.continues_assistant)
    return rendered[0]


def check_gemma_format(chat_template: str, bos_token: str) -> None:
    """Raise unless ``chat_template`` renders every probe exactly as the Gemma TEMPLATE does."""
    for probe in PROBES:
        try:
            rendered = render_jinja(chat_template, bos_token, probe)
        except Exception as exc:  # a foreign template may raise anything for a probe it does not accept
            raise PackageError(f"the GGUF's chat template fails on the {probe.name!r} conversation "
                               f"({exc}); only Gemma 3n's turn format has an Ollama TEMPLATE here") from exc
        if rendered != bos_token + probe.expected:
            raise PackageError(f"the GGUF's chat template renders the {probe.name!r} conversation as "
                               f"{rendered!r}, not Gemma 3n's turn format; only that has an Ollama TEMPLATE here")


def ollama_template(add_bos_token: bool, bos_token: str) -> str:
    """The TEMPLATE text; BOS written out only when the runtime will not add it."""
    return GEMMA3N_TEMPLATE if add_bos_token else bos_token + GEMMA3N_TEMPLATE
