"""Sizes of the synthetic competition."""

from __future__ import annotations

from dataclasses import dataclass

from mmscel.data import layout


@dataclass(frozen=True)
class Scale:
    """Cell and feature counts of one synthetic scale.

    Attributes
    ----------
    name : str
        'tiny', 'small', 'medium' or 'full'.
    cite_train, cite_test, cite_genes : int
        CITEseq training cells, test cells and input genes.
    multi_train, multi_test, multi_peaks, multi_genes : int
        Multiome training cells, test cells, input peaks and target genes.
    """

    name: str
    cite_train: int
    cite_test: int
    cite_genes: int
    multi_train: int
    multi_test: int
    multi_peaks: int
    multi_genes: int

    @property
    def cite_fraction(self) -> float:
        """Size of the CITEseq test set relative to the competition's."""
        return self.cite_test / layout.FULL_SHAPES["cite"]["test"]

    @property
    def multi_scored(self) -> tuple[int, int]:
        """Scored Multiome test cells and genes per cell (30% x 15%, exact at full scale)."""
        if (
            self.multi_test == layout.FULL_SHAPES["multi"]["test"]
            and self.multi_genes == layout.FULL_SHAPES["multi"]["targets"]
        ):
            return layout.FULL_MULTI_SCORED
        return max(1, round(0.3 * self.multi_test)), max(2, round(0.15 * self.multi_genes))

    @property
    def cite_leak_rows(self) -> int:
        """Public-test rows that duplicate train rows (7,476 at full scale)."""
        return round(layout.FULL_CITE_LEAK_ROWS * self.cite_fraction)

    @property
    def cite_day2_extra(self) -> tuple[int, int]:
        """Cells and genes of the extra day-2 donor-27678 CITEseq file (7,016 x 22,085 at full)."""
        cells = max(2, round(layout.FULL_CITE_DAY2_EXTRA[0] * self.cite_fraction))
        extra = layout.FULL_CITE_DAY2_EXTRA[1] - layout.FULL_SHAPES["cite"]["inputs"]
        return cells, self.cite_genes + max(2, round(extra * self.cite_genes / layout.FULL_SHAPES["cite"]["inputs"]))


SCALES = {
    "tiny": Scale("tiny", 480, 360, 400, 680, 420, 1_000, 300),
    "small": Scale("small", 5_000, 3_400, 3_000, 7_400, 4_200, 30_000, 2_500),
    # A quarter of the competition's cells with its full feature sets.
    "medium": Scale("medium", 17_747, 12_166, 22_050, 26_486, 13_984, 228_942, 23_418),
    "full": Scale(
        "full",
        layout.FULL_SHAPES["cite"]["train"],
        layout.FULL_SHAPES["cite"]["test"],
        layout.FULL_SHAPES["cite"]["inputs"],
        layout.FULL_SHAPES["multi"]["train"],
        layout.FULL_SHAPES["multi"]["test"],
        layout.FULL_SHAPES["multi"]["inputs"],
        layout.FULL_SHAPES["multi"]["targets"],
    ),
}
