"""``fmaprep fetch-dataset``: the FMA dataset archives (see fmaprep.acquire.dataset)."""

from fmaprep.acquire.commands import (
    DATASET_EXAMPLES,
    DATASET_HELP,
    add_dataset_arguments,
    run_dataset,
)

NAME, HELP, EXAMPLES = "fetch-dataset", DATASET_HELP, DATASET_EXAMPLES
add_arguments, run = add_dataset_arguments, run_dataset
