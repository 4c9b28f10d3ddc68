"""`python -m helpers.kill_at_call N ARGS...` (tests/ on the path): RUN/python -m auto_eval ARGS, SIGKILLed at the
N-th call of a local LLM's next_token_logprobs (0: never), as a crash would."""
import os
import signal
import sys

from palkit.cli import run_main

from auto_eval.cli import main
from chat_systems.llm import LocalLLM

if __name__ == "__main__":
    kill_at, calls = int(sys.argv[1]), [0]
    original = LocalLLM.next_token_logprobs

    def counted(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)
    LocalLLM.next_token_logprobs = counted
    run_main(main, sys.argv[2:])
