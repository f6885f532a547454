"""A byte-level BPE tokenizer trained on the world's web corpus (lesson 00).

Byte-level BPE (GPT-2's scheme) never meets an unknown character: Korean, emoji or any other Unicode falls back to
bytes, so decode(encode(text)) == text exactly. No normalizer is used, for the same reason. The result is saved as an
ordinary `transformers` tokenizer with the course's chat template, so `AutoTokenizer.from_pretrained` loads it.
"""
from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

EOS, PAD = "<|endoftext|>", "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (EOS, PAD, *ROLE_TOKENS)

# ChatGPT-API style messages -> text. Every assistant turn ends with EOS, which is how the policy learns to stop.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ '<|endoftext|>' }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
# Stanford Alpaca's prompt template (with and without an input).
ALPACA_TEMPLATE = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
ALPACA_TEMPLATE_NO_INPUT = "### Instruction:\n{instruction}\n\n### Response:\n"


def train_tokenizer(texts, vocab_size: int, out_dir: Path | None = None) -> PreTrainedTokenizerFast:
    """Train byte-level BPE on `texts` and wrap it as a transformers tokenizer (saved to `out_dir` if given)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD,
                                 additional_special_tokens=list(ROLE_TOKENS), clean_up_tokenization_spaces=False)
    hf.chat_template = CHAT_TEMPLATE
    hf.padding_side = "right"
    if out_dir is not None:
        hf.save_pretrained(out_dir)
    return hf


def render_alpaca(instruction: str, input: str = "") -> str:
    """The Alpaca prompt for one record (the response follows it)."""
    if input:
        return ALPACA_TEMPLATE.format(instruction=instruction, input=input)
    return ALPACA_TEMPLATE_NO_INPUT.format(instruction=instruction)


def require_chat_template(tokenizer) -> None:
    """A chat prompt needs the tokenizer's chat template; a tokenizer without one (many base checkpoints, GPT-2's)
    is an error that says what to set, not transformers' error from deep inside `apply_chat_template`."""
    if not getattr(tokenizer, "chat_template", None):
        where = getattr(tokenizer, "name_or_path", "") or "no path"
        raise ValueError(f"the tokenizer ({type(tokenizer).__name__}, {where}) has no chat template, which chat "
                         "prompts and chat demonstrations need: set tokenizer.chat_template (e.g. "
                         "rlhf_lib.tokenizer.CHAT_TEMPLATE, after adding its role tokens "
                         f"{', '.join(ROLE_TOKENS)} with tokenizer.add_special_tokens and resizing the embeddings) "
                         "and save it, or use the 'plain' or 'alpaca' prompt format")


def render_prompt(tokenizer, prompt: str | list[dict], fmt: str, system: str | None = None) -> str:
    """The text a model is conditioned on: `plain` (a base LM sees the bare prompt, as GPT-3 did), `chat`
    (the tokenizer's chat template) or `alpaca`. A list of messages (system, user and assistant turns, as a
    ChatGPT-API call sends them) is rendered with the chat template as it is."""
    if isinstance(prompt, list):
        if fmt != "chat":
            raise ValueError(f"a list of messages is rendered with the chat template; fmt {fmt!r} cannot render it")
        require_chat_template(tokenizer)
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    if fmt == "plain":
        return prompt + "\n"
    if fmt == "chat":
        require_chat_template(tokenizer)
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if fmt == "alpaca":
        return render_alpaca(prompt)
    raise ValueError(f"prompt format {fmt!r} is unknown; use 'plain', 'chat' or 'alpaca'")
