"""The aligned policy behind an OpenAI-compatible API (lesson 09): Hugging Face's own server, the official client.

The deck's first half builds applications on the ChatGPT API; here the "ChatGPT" is a stage of this course.
`transformers serve` (the `transformers[serving]` extra: FastAPI + Uvicorn) answers `POST /v1/chat/completions` for
a local `save_pretrained` folder, on CPU and offline, and the `openai` package talks to it as to OpenAI's service:

    with Server("artifacts/ppo") as server:                  # 127.0.0.1, a free port, waits for /health
        chat = HTTPChat(server)
        chat([{"role": "user", "content": "Explain the moon landing to a 6 year old."}])

`LocalChat(folder)` has the same `chat(messages)` signature and runs in this process (bulk measurements: no HTTP
round trip); greedy decoding gives both the same answer (tested). The server is started in its own process group
and stopped by PID when the `with` block ends — normally, on an exception, or on Ctrl-C / a kernel interrupt — and at
interpreter exit if it is still running. A server that does not come up is a `ServingError` with its log's tail.
"""
from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import torch

from .models import load_causal_lm


class ServingError(RuntimeError):
    """The server did not come up, or stopped; the message says why, with the end of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(folder: Path, port: int, seed: int = 0) -> list[str]:
    """`transformers serve FOLDER` on 127.0.0.1:port, on CPU, the model preloaded, remote code off."""
    cli = Path(sys.executable).with_name("transformers")
    return [str(cli), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
            "--no-trust-remote-code", "--default-seed", str(seed), "--log-level", "warning"]


class Server:
    """`transformers serve` for one stage folder, as a context manager (see the module docstring)."""

    def __init__(self, folder: str | Path, *, port: int | None = None, timeout: float = 120.0, seed: int = 0):
        self.folder = Path(folder).resolve()
        if not (self.folder / "config.json").is_file():
            raise ServingError(f"{self.folder} has no config.json: serve a stage folder that holds a model "
                               "(e.g. artifacts/ppo; train it with pipeline.require('ppo'))")
        self.port, self.timeout, self.seed = port or free_port(), timeout, seed
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="transformers-serve-", suffix=".log")[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        """The model name requests carry: the folder the server preloaded."""
        return str(self.folder)

    def start(self) -> Server:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(server_command(self.folder, self.port, self.seed), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)          # its own process group: stop() ends all
        atexit.register(self.stop)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise ServingError(f"transformers serve {self.folder} exited with status {self.proc.returncode} "
                                   f"before answering /health:\n{self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(0.25)
        self.stop()
        raise ServingError(f"transformers serve {self.folder} did not answer http://127.0.0.1:{self.port}/health "
                           f"within {self.timeout:.0f} s (raise timeout=, or read its log):\n{self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after 10 s; safe to call twice."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class HTTPChat:
    """`chat(messages) -> str` through the official `openai` client and the server's /v1/chat/completions."""

    def __init__(self, server: Server, *, max_tokens: int = 64):
        from openai import OpenAI
        self.client = OpenAI(base_url=server.base_url, api_key="local", max_retries=0, timeout=120)
        self.model, self.max_tokens = server.model, max_tokens

    def __call__(self, messages: list[dict], *, max_tokens: int | None = None) -> str:
        completion = self.client.chat.completions.create(model=self.model, messages=messages, temperature=0,
                                                         max_tokens=max_tokens or self.max_tokens)
        return completion.choices[0].message.content.strip()

    def many(self, conversations: list[list[dict]], *, max_tokens: int | None = None) -> list[str]:
        """One request per conversation, in order (the server answers them one after another)."""
        return [self(m, max_tokens=max_tokens) for m in conversations]


class LocalChat:
    """The same `chat(messages) -> str` in this process: the chat template, greedy decoding, EOS stops. `many`
    answers a list of conversations in left-padded batches (the bulk measurements of lesson 09)."""

    def __init__(self, folder: str | Path, *, max_tokens: int = 64, batch_size: int = 32):
        self.model, self.tokenizer = load_causal_lm(Path(folder))
        self.model.eval()
        self.max_tokens, self.batch_size = max_tokens, batch_size

    @torch.no_grad()
    def many(self, conversations: list[list[dict]], *, max_tokens: int | None = None) -> list[str]:
        tok, out = self.tokenizer, []
        side, tok.padding_side = tok.padding_side, "left"
        try:
            for i in range(0, len(conversations), self.batch_size):
                texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                         for m in conversations[i:i + self.batch_size]]
                enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
                gen = self.model.generate(**enc, do_sample=False, max_new_tokens=max_tokens or self.max_tokens,
                                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
                out += [t.strip() for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1]:],
                                                            skip_special_tokens=True)]
        finally:
            tok.padding_side = side
        return out

    @torch.no_grad()
    def __call__(self, messages: list[dict], *, max_tokens: int | None = None) -> str:
        tok = self.tokenizer
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        out = self.model.generate(**ids, do_sample=False, max_new_tokens=max_tokens or self.max_tokens,
                                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def get_chatgpt_msg(msg: list[dict], chat) -> str:
    """The deck's helper, `get_chatgpt_msg(msg)`, with the backend passed in: the reply to the message list `msg`."""
    return chat(msg)
