"""Chat formatting with exact token spans for prompt and response.

``encode_chat`` renders (optional system, user, [assistant]) with the tokenizer's chat template and
returns the token ids plus the spans, so positions are taken exactly:
- ``last_prompt``: index of the last token before the answer (the end of the generation prompt);
- response span ``[response_start, response_end)``: the tokens of the assistant's content, without
  the end-of-turn marker. Empty for a prompt-only example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


class ChatTemplateError(ValueError):
    pass


@dataclass
class ChatEncoding:
    input_ids: list[int]
    last_prompt: int
    response_start: int
    response_end: int

    @property
    def has_response(self) -> bool:
        return self.response_end > self.response_start

    def __len__(self) -> int:
        return len(self.input_ids)


def _render(tokenizer: Any, messages: list[dict], add_generation_prompt: bool, chat_template: str | None) -> str:
    if chat_template is None and not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; pass chat_template= "
            "(a Jinja string) or use an instruction-tuned model that ships one")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                         chat_template=chat_template)


def encode_chat(tokenizer: Any, messages: list[dict], chat_template: str | None = None) -> ChatEncoding:
    """Tokenise a conversation. If the last message is the assistant's, its content is the response."""
    has_answer = messages[-1]["role"] == "assistant"
    prompt_msgs = messages[:-1] if has_answer else messages
    prompt_text = _render(tokenizer, prompt_msgs, True, chat_template)
    if not has_answer:
        ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        return ChatEncoding(ids, len(ids) - 1, len(ids), len(ids))
    full_text = _render(tokenizer, messages, False, chat_template)
    content = messages[-1]["content"]
    if not full_text.startswith(prompt_text):
        raise ChatTemplateError("the chat template renders the prompt differently with and without the answer; "
                                "pass a chat_template whose generation prompt is a prefix of the full chat")
    c0 = full_text.find(content, len(prompt_text)) if content else len(prompt_text)
    if c0 < 0:
        raise ChatTemplateError("the chat template changed the assistant content (e.g. stripped it); "
                                "strip whitespace from answers or pass a chat_template")
    c1 = c0 + len(content)
    enc = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    start = next((i for i, (s, _) in enumerate(offsets) if s >= c0), len(ids))
    # A token straddling the boundary (starts in the prompt) counts as prompt.
    end = next((i for i, (s, _) in enumerate(offsets) if s >= c1), len(ids))
    if end <= start and content.strip():
        raise ChatTemplateError(f"could not locate the response tokens of {content[:40]!r}")
    return ChatEncoding(ids, start - 1, start, end)


def pad_batch(encodings: list[ChatEncoding], pad_id: int, side: str = "right",
              device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Pad a batch. Returns input_ids, attention_mask, position_ids (correct under either padding side)
    and ``offset`` [B]: the index shift of each row (0 for right padding)."""
    n = max(len(e) for e in encodings)
    ids = torch.full((len(encodings), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encodings), n), dtype=torch.long)
    offset = torch.zeros(len(encodings), dtype=torch.long)
    for i, e in enumerate(encodings):
        k = len(e)
        o = n - k if side == "left" else 0
        ids[i, o:o + k] = torch.tensor(e.input_ids)
        mask[i, o:o + k] = 1
        offset[i] = o
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": pos.to(device),
            "offset": offset}
