"""The competition's file layout, names and fixed facts.

Everything here describes the Kaggle competition "Open Problems - Multimodal
Single-Cell Integration" (2022) as shipped, so that synthetic, imported and
real folders look the same to the rest of the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmscel.data.error_text import shown

TASKS = ("cite", "multi")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Task:
    """One of the two prediction tasks and the files that belong to it.

    Attributes
    ----------
    name : str
        'cite' or 'multi', as in the file names.
    technology : str
        The metadata's technology of its cells.
    days : tuple of int
        The days its cells were sampled on.
    last_day : int
        The day of the private test cells, beyond every training day.
    """

    name: str
    technology: str
    days: tuple[int, ...]
    last_day: int

    @property
    def train_inputs(self) -> str:
        """Stem of the training inputs file."""
        return f"train_{self.name}_inputs"

    @property
    def train_targets(self) -> str:
        """Stem of the training targets file."""
        return f"train_{self.name}_targets"

    @property
    def test_inputs(self) -> str:
        """Stem of the test inputs file."""
        return f"test_{self.name}_inputs"

    def stems(self) -> tuple[str, str, str]:
        """File stems of the three matrices this task ships.

        Returns
        -------
        tuple of str
            Train inputs, train targets and test inputs.
        """
        return (self.train_inputs, self.train_targets, self.test_inputs)


CITE = Task("cite", "citeseq", days=(2, 3, 4, 7), last_day=7)
MULTI = Task("multi", "multiome", days=(2, 3, 4, 7, 10), last_day=10)
TASK_BY_NAME = {"cite": CITE, "multi": MULTI}

H5_STEMS = CITE.stems() + MULTI.stems()
METADATA = "metadata.csv"
EVALUATION_IDS = "evaluation_ids.csv"
SAMPLE_SUBMISSION = "sample_submission.csv"
TRUTH_DIR = "truth"
TRUTH_JSON = "truth.json"
SOLUTION = "solution.parquet"
TRAIN_REFERENCES = "train_references.parquet"  # per train cell: oracle and reachable scores

# Extra files the organisers released during the competition.
CITE_DAY2_EXTRA = "test_cite_inputs_day_2_donor_27678"
CITE_DAY2_EXTRA_METADATA = "metadata_cite_day_2_donor_27678.csv"
RAW_SUFFIX = "_raw"

METADATA_COLUMNS = ("cell_id", "day", "donor", "cell_type", "technology")
EVALUATION_COLUMNS = ("row_id", "cell_id", "gene_id")
SUBMISSION_COLUMNS = ("row_id", "target")

DONORS = (13176, 31800, 32606, 27678)
FEMALE_DONOR = 13176
PUBLIC_DONOR = 27678
TRAIN_DONORS = (13176, 31800, 32606)
CELL_TYPES = ("HSC", "EryP", "NeuP", "MasP", "MkP", "BP", "MoP")
HIDDEN_CELL_TYPE = "hidden"

# Exact shapes of the competition's files.
FULL_SHAPES = {
    "cite": {"train": 70_988, "test": 48_663, "inputs": 22_050, "targets": 140},
    "multi": {"train": 105_942, "test": 55_935, "inputs": 228_942, "targets": 23_418},
}
FULL_METADATA_ROWS = 281_528
FULL_SUBMISSION_ROWS = 65_744_180
FULL_MULTI_SCORED = (16_780, 3_512)  # scored test cells x genes per cell
FULL_CITE_DAY2_EXTRA = (7_016, 22_085)
FULL_CITE_LEAK_ROWS = 7_476

ISOTYPE_CONTROLS = ("Mouse-IgG1", "Mouse-IgG2a", "Mouse-IgG2b", "Rat-IgG1", "Rat-IgG2a", "Rat-IgG2b")

# The competition's 140 CITEseq targets: the 134 proteins of the 2021 benchmark
# panel (same consortium and antibodies) plus the six isotype controls. Where the
# controls sit in Kaggle's column order is our assumption.
CITE_PROTEINS = (
    "CD86",
    "CD274",
    "CD270",
    "CD155",
    "CD112",
    "CD47",
    "CD48",
    "CD40",
    "CD154",
    "CD52",
    "CD3",
    "CD8",
    "CD56",
    "CD19",
    "CD33",
    "CD11c",
    "HLA-A-B-C",
    "CD45RA",
    "CD123",
    "CD7",
    "CD105",
    "CD49f",
    "CD194",
    "CD4",
    "CD44",
    "CD14",
    "CD16",
    "CD25",
    "CD45RO",
    "CD279",
    "TIGIT",
    "Mouse-IgG1",
    "Mouse-IgG2a",
    "Mouse-IgG2b",
    "Rat-IgG2b",
    "CD20",
    "CD335",
    "CD31",
    "Podoplanin",
    "CD146",
    "IgM",
    "CD5",
    "CD195",
    "CD32",
    "CD196",
    "CD185",
    "CD103",
    "CD69",
    "CD62L",
    "CD161",
    "CD152",
    "CD223",
    "KLRG1",
    "CD27",
    "CD107a",
    "CD95",
    "CD134",
    "HLA-DR",
    "CD1c",
    "CD11b",
    "CD64",
    "CD141",
    "CD1d",
    "CD314",
    "CD35",
    "CD57",
    "CD272",
    "CD278",
    "CD58",
    "CD39",
    "CX3CR1",
    "CD24",
    "CD21",
    "CD11a",
    "CD79b",
    "CD244",
    "CD169",
    "integrinB7",
    "CD268",
    "CD42b",
    "CD54",
    "CD62P",
    "CD119",
    "TCR",
    "Rat-IgG1",
    "Rat-IgG2a",
    "CD192",
    "CD122",
    "FceRIa",
    "CD41",
    "CD137",
    "CD163",
    "CD83",
    "CD124",
    "CD13",
    "CD2",
    "CD226",
    "CD29",
    "CD303",
    "CD49b",
    "CD81",
    "IgD",
    "CD18",
    "CD28",
    "CD38",
    "CD127",
    "CD45",
    "CD22",
    "CD71",
    "CD26",
    "CD115",
    "CD63",
    "CD304",
    "CD36",
    "CD172a",
    "CD72",
    "CD158",
    "CD93",
    "CD49a",
    "CD49d",
    "CD73",
    "CD9",
    "TCRVa7.2",
    "TCRVd2",
    "LOX-1",
    "CD158b",
    "CD158e1",
    "CD142",
    "CD319",
    "CD352",
    "CD94",
    "CD162",
    "CD85j",
    "CD23",
    "CD328",
    "HLA-E",
    "CD82",
    "CD101",
    "CD88",
    "CD224",
)
assert len(CITE_PROTEINS) == 140 and len(set(CITE_PROTEINS)) == 140


def task(name: str) -> Task:
    """The task called ``name``.

    Parameters
    ----------
    name : {'cite', 'multi'}
        The task's name.

    Returns
    -------
    Task
        ``CITE`` or ``MULTI``.

    Raises
    ------
    ValueError
        For any other name.
    """
    try:
        return TASK_BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown task {shown(name)}; expected one of {', '.join(TASKS)}") from None


def h5_path(data_dir: Path, stem: str) -> Path:
    """Path of the competition HDF5 file with the given stem.

    Parameters
    ----------
    data_dir : pathlib.Path
        The competition folder (or its ``truth/``).
    stem : str
        File stem, which is also the frame's name.

    Returns
    -------
    pathlib.Path
        ``<data_dir>/<stem>.h5``.
    """
    return Path(data_dir) / f"{stem}.h5"
