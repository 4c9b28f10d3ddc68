"""Options that several command lines share, each declared once (name, type, help); a script chooses its default."""
from palkit.argtypes import boolean_string, int_range

SEED = int_range(0, 2**32 - 1)


def add_seed_argument(parser, default, help="seed of the python, numpy and torch generators"):
    parser.add_argument("--seed", type=SEED, default=default, help=help)


def add_device_argument(parser, default="auto"):
    parser.add_argument("--device", default=default,
                        help="cpu, cuda, cuda:N, or auto (the same as none given): CUDA when available, else cpu")


def add_pbar_argument(parser):
    parser.add_argument("--pbar", type=boolean_string, default=True, help="progress bar")
