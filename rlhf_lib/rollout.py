"""PPO's rollout — InstructGPT step 3, phases 1–5 (lesson 04): sample, score, and everything the update needs.

    1. rollout    sample prompts, generate responses with the KV cache (`generation.sample`)
    2. score      reward model score r_φ(x, y); a response that never emitted EOS gets `no_eos_penalty` instead
    3. forward    log π_θ_old(y_t), log π_SFT(y_t) of the *sampled* tokens, critic values V(s_t)
    4. rewards    r_t = −β (log π_old(y_t) − log π_SFT(y_t)), plus the score on the last response token
    5. advantages GAE: δ_t = r_t + γ V_{t+1} − V_t,  A_t = δ_t + γλ A_{t+1};  returns R_t = A_t + V_t;  whiten A

Everything a rollout produces lives in one `Memory` (ChatLLaMA kept the same fields in a namedtuple, but filled
`actions_log_probs` with log(max softmax) — see `chatllama_bugs.py`). The `Critic` reads prompt ⊕ response and is
initialised from the reward model, as InstructGPT did.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, fields

import torch
from einops import repeat

from .generation import SamplingConfig, sample
from .rl import gae, kl_penalized_rewards, logprobs_from_logits, whiten
from .training import check_finite


class Rows:
    """A rollout batch of B rows — `sequences`/`attention_mask` (B, L), other tensors (B, T) or (B,), lists of B —
    that minibatches slice by rows (`Memory` here, `group_rollout.Groups` for GRPO and RLOO)."""

    def __len__(self) -> int:
        return self.actions.shape[0]

    def __getitem__(self, idx):
        """The rows `idx` (a list or 1-D tensor of indices), with the columns that are padding in all of them
        dropped: a minibatch costs only as much compute as its longest row."""
        idx = torch.as_tensor(idx)
        resp_lens = self.mask[idx].sum(-1).long()                           # (b,)
        T = int(resp_lens.max())
        L = int((self.prompt_lens[idx] + resp_lens).max())
        parts = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, torch.Tensor):
                parts[f.name] = [v[i] for i in idx.tolist()]
            elif v.dim() == 1:
                parts[f.name] = v[idx]
            else:
                parts[f.name] = v[idx, :L] if f.name in ("sequences", "attention_mask") else v[idx, :T]
        return type(self)(**parts)


@dataclass
class Memory(Rows):
    """One rollout batch: B responses, each stored as prompt ⊕ response, right-padded to L tokens.

    ChatLLaMA's `Memory` held states, actions, sequences, values, rewards, actions_log_probs and sequences_mask.
    These are the same fields with their correct contents, plus what GAE and the diagnostics need. Row b's prompt
    (ChatLLaMA's `states`) is `sequences[b, :prompt_lens[b]]`; its response (the `actions`) follows it.

    =============== ========== =============================================================================
    sequences       (B, L)     prompt ⊕ response ⊕ padding: what the policy, reference and critic read
    attention_mask  (B, L)     1 on real prompt and response tokens
    prompt_lens     (B,)       prompt tokens of each row
    actions         (B, T)     sampled response ids (EOS included), right-padded
    mask            (B, T)     float, 1 on response tokens up to and including EOS
    logp            (B, T)     log π_old(y_t | x, y_<t) of the **sampled** token (not of the argmax)
    ref_logp        (B, T)     log π_SFT(y_t | x, y_<t) of the same token (KL to the reference, not to π_old)
    values          (B, T)     V(x ⊕ y_<t) from the critic
    scores          (B,)       reward-model score (or the no-EOS penalty)
    rewards         (B, T)     per-token KL penalty + score on the last token
    adv             (B, T)     GAE advantages, whitened
    returns         (B, T)     value targets A + V (before whitening)
    ended           (B,)       bool: the response emitted EOS
    records, texts  lists      the prompt records and the decoded responses (for the RM, the gold labeler, logs)
    =============== ========== =============================================================================
    """
    sequences: torch.Tensor
    attention_mask: torch.Tensor
    prompt_lens: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor
    logp: torch.Tensor
    ref_logp: torch.Tensor
    values: torch.Tensor
    scores: torch.Tensor
    rewards: torch.Tensor
    adv: torch.Tensor
    returns: torch.Tensor
    ended: torch.Tensor
    records: list
    texts: list


def response_mask(actions: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float mask (B, T) of the tokens up to and including the first EOS, and `ended` (B,) bool.

    A response without EOS keeps all T tokens: it was cut at max_new_tokens (and is penalised in phase 2)."""
    is_eos = (actions == eos_id).long()                                     # (B, T)
    before_or_at = (is_eos.cumsum(-1) - is_eos) == 0                        # (B, T) no EOS strictly before t
    return before_or_at.float(), is_eos.bool().any(-1)


def pack(prompt_ids: torch.Tensor, prompt_attn: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor,
         pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded prompts (B, P) and right-padded responses (B, T) -> right-padded prompt ⊕ response (B, L),
    its attention mask (B, L) and the prompt lengths (B,). `generate` needs left padding; training does not,
    and without it a row costs its own length, not P_max + T_max."""
    prompt_lens = prompt_attn.sum(-1).long()                                # (B,)
    resp_lens = mask.sum(-1).long()                                         # (B,)
    L = int((prompt_lens + resp_lens).max())
    sequences = torch.full((len(actions), L), pad_id, dtype=actions.dtype)
    attn = torch.zeros(len(actions), L, dtype=torch.long)
    for b, (p, r) in enumerate(zip(prompt_lens.tolist(), resp_lens.tolist())):
        sequences[b, :p] = prompt_ids[b, prompt_ids.shape[1] - p:]          # the prompt without its left padding
        sequences[b, p:p + r] = actions[b, :r]
        attn[b, :p + r] = 1
    return sequences, attn, prompt_lens


def response_positions(prompt_lens: torch.Tensor, T: int, L: int) -> torch.Tensor:
    """Index (B, T) of the position whose output predicts response token t: prompt_len − 1 + t (clamped on padding)."""
    return (prompt_lens[:, None] - 1 + torch.arange(T)).clamp(max=L - 1)


def gather_positions(hidden: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """hidden (B, L, H), positions (B, T) -> (B, T, H)."""
    return hidden.gather(1, repeat(pos, "b t -> b t h", h=hidden.shape[-1]))


# ------------------------------------------------------------------------------------------------- the models
class Critic(torch.nn.Module):
    """V(x ⊕ y_<t): a transformer backbone and a linear head on the last hidden state of each position.

    `from_reward_model` copies the reward model (InstructGPT: "we initialize the value function from the RM") and
    folds its normalisation into the head, so V starts out as the normalised RM score of each prefix.
    `on_policy` shares the policy's backbone and adds a fresh zero head (cheaper; the value loss then also
    shapes the policy's features)."""

    def __init__(self, backbone: torch.nn.Module, head: torch.nn.Linear):
        super().__init__()
        self.backbone, self.head = backbone, head

    @classmethod
    def from_reward_model(cls, rm, norm: dict) -> Critic:
        rm = copy.deepcopy(rm).requires_grad_(True)
        w = rm.score.weight.detach()                                        # (1, H)
        head = torch.nn.Linear(w.shape[1], 1, bias=True)
        with torch.no_grad():
            head.weight.copy_(norm["gain"] * w)                            # detail: V = gain · raw + bias
            raw_bias = rm.score.bias.detach() if rm.score.bias is not None else torch.zeros(1)
            head.bias.copy_(norm["gain"] * raw_bias + norm["bias"])
        return cls(rm.base_model, head)                                    # any architecture's backbone

    @classmethod
    def on_policy(cls, policy) -> Critic:
        head = torch.nn.Linear(policy.config.hidden_size, 1, bias=True)
        torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)
        return cls(policy.base_model, head)

    def forward(self, sequences, attention_mask, prompt_lens, T: int) -> torch.Tensor:
        """Values of the states before each response token: (B, L) -> (B, T)."""
        hidden = self.backbone(input_ids=sequences, attention_mask=attention_mask).last_hidden_state  # (B, L, H)
        pos = response_positions(prompt_lens, T, sequences.shape[1])          # (B, T)
        return self.head(gather_positions(hidden, pos)).squeeze(-1)                    # (B, T)


def response_logits(model, sequences, attention_mask, prompt_lens, T: int, temperature: float) -> torch.Tensor:
    """Temperature-scaled next-token logits at the response positions: (B, L) -> (B, T, V).

    The LM head runs only on the T positions that predict response tokens (not on the prompt), which saves a
    third of the compute of this small model. Written for LLaMA-style models (`base_model` + output embeddings)."""
    hidden = model.base_model(input_ids=sequences, attention_mask=attention_mask).last_hidden_state   # (B, L, H)
    pos = response_positions(prompt_lens, T, sequences.shape[1])             # (B, T)
    logits = model.get_output_embeddings()(gather_positions(hidden, pos))            # (B, T, V)
    return logits / temperature                                             # detail: π is what we sample from


def memory_logits(model, mem: Memory, temperature: float) -> torch.Tensor:
    return response_logits(model, mem.sequences, mem.attention_mask, mem.prompt_lens, mem.actions.shape[1],
                           temperature)



# ------------------------------------------------------------------------------------------------- phases 1–5
def decode_responses(tokenizer, actions: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """Response texts without EOS and padding."""
    return [tokenizer.decode([t for t, m in zip(row, mrow) if m and t != tokenizer.eos_token_id],
                             skip_special_tokens=True).strip()
            for row, mrow in zip(actions.tolist(), mask.tolist())]


@dataclass
class Sampled:
    """One response per record, ready for the forward passes: prompt ⊕ response right-padded (B, L), the responses
    (B, T) padded after EOS, their mask, whether each ended, and the decoded texts."""
    sequences: torch.Tensor
    attention_mask: torch.Tensor
    prompt_lens: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor
    ended: torch.Tensor
    texts: list


@torch.no_grad()
def sample_responses(policy, tokenizer, records: list[dict], sampling: SamplingConfig) -> Sampled:
    """Phase 1: one response per record with the KV cache (`generation.sample`), padded after EOS and packed."""
    prompt_ids, prompt_attn, actions = sample(policy, tokenizer, [r["prompt"] for r in records], sampling, fmt="chat")
    mask, ended = response_mask(actions, tokenizer.eos_token_id)            # (B, T), (B,)
    actions = torch.where(mask.bool(), actions, tokenizer.pad_token_id)      # (B, T) pad after EOS
    sequences, attn, prompt_lens = pack(prompt_ids, prompt_attn, actions, mask, tokenizer.pad_token_id)  # (B, L) x2
    return Sampled(sequences, attn, prompt_lens, actions, mask, ended, decode_responses(tokenizer, actions, mask))


def sampled_logprobs(model, s: Sampled, temperature: float) -> torch.Tensor:
    """log π(y_t | x, y_<t) of the sampled tokens under `model` at the sampling temperature: (B, T)."""
    logits = response_logits(model, s.sequences, s.attention_mask, s.prompt_lens, s.actions.shape[1], temperature)
    return logprobs_from_logits(logits, s.actions)


@torch.no_grad()
def make_memory(policy, ref, critic, tokenizer, records, reward_fn, *, sampling: SamplingConfig, beta: float,
                gamma: float, lam: float, no_eos_penalty: float, timings: dict | None = None) -> Memory:
    """Phases 1–5 for one batch of prompt records: rollout, score, forward passes, rewards, advantages.
    `reward_fn(records, texts) -> (B,)` scores the responses; `timings` receives each phase's seconds."""
    timings = {} if timings is None else timings
    # 1. rollout with the KV cache
    t = time.perf_counter()
    s = sample_responses(policy, tokenizer, records, sampling)
    sequences, attn, prompt_lens, actions, mask, ended, texts = (s.sequences, s.attention_mask, s.prompt_lens,
                                                                 s.actions, s.mask, s.ended, s.texts)
    timings["generate"] = time.perf_counter() - t
    # 2. score with the reward model; responses cut at max_new_tokens get a fixed penalty instead
    t = time.perf_counter()
    scores = reward_fn(records, texts).float()                              # (B,)
    check_finite("2. score (reward model)", scores=scores)
    scores = torch.where(ended, scores, torch.full_like(scores, no_eos_penalty))   # detail: EOS penalty
    timings["score"] = time.perf_counter() - t
    # 3. log-probs of the sampled tokens under the policy and the reference; values from the critic
    t = time.perf_counter()
    policy.eval(), critic.eval()
    logp = sampled_logprobs(policy, s, sampling.temperature)                # (B, T)
    ref_logp = sampled_logprobs(ref, s, sampling.temperature)               # (B, T)
    values = critic(sequences, attn, prompt_lens, actions.shape[1])         # (B, T)
    timings["forward"] = time.perf_counter() - t
    m = mask.bool()
    check_finite("3. forward (log-probs, values)", logp=torch.where(m, logp, 0.0),
                 ref_logp=torch.where(m, ref_logp, 0.0), values=torch.where(m, values, 0.0))
    # 4. per-token KL penalty, plus the score at the last response token
    rewards = kl_penalized_rewards(scores, logp, ref_logp, mask, beta=beta)  # (B, T)
    # 5. GAE advantages and returns; whiten the advantages over the batch
    adv, returns = gae(rewards, values, mask, gamma=gamma, lam=lam)           # (B, T), (B, T)
    adv = whiten(adv, mask)                                                 # detail: advantage whitening
    check_finite("5. advantages", rewards=rewards, adv=adv, returns=returns)
    return Memory(sequences=sequences, attention_mask=attn, prompt_lens=prompt_lens, actions=actions, mask=mask,
                  logp=logp, ref_logp=ref_logp, values=values, scores=scores, rewards=rewards, adv=adv,
                  returns=returns, ended=ended, records=list(records), texts=texts)
