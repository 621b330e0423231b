"""Names in the competition's style: cell ids, genes, proteins and ATAC peaks."""

from __future__ import annotations

import numpy as np

from mmscel.data import layout

# GRCh38 primary chromosome lengths (bp); peaks are spread in proportion.
CHROMOSOME_LENGTHS = {
    "chr1": 248_956_422,
    "chr2": 242_193_529,
    "chr3": 198_295_559,
    "chr4": 190_214_555,
    "chr5": 181_538_259,
    "chr6": 170_805_979,
    "chr7": 159_345_973,
    "chr8": 145_138_636,
    "chr9": 138_394_717,
    "chr10": 133_797_422,
    "chr11": 135_086_622,
    "chr12": 133_275_309,
    "chr13": 114_364_328,
    "chr14": 107_043_718,
    "chr15": 101_991_189,
    "chr16": 90_338_345,
    "chr17": 83_257_441,
    "chr18": 80_373_285,
    "chr19": 58_617_616,
    "chr20": 64_444_167,
    "chr21": 46_709_983,
    "chr22": 50_818_468,
    "chrX": 156_040_895,
    "chrY": 57_227_415,
}
# Unplaced and unlocalised contigs that carry a few peaks in the real data.
CONTIG_LENGTHS = {
    "GL000194.1": 191_469,
    "GL000195.1": 182_896,
    "GL000205.2": 185_591,
    "GL000219.1": 179_198,
    "KI270711.1": 42_210,
    "KI270713.1": 40_745,
    "KI270721.1": 100_316,
    "KI270726.1": 43_739,
    "KI270727.1": 448_248,
    "KI270734.1": 165_050,
}
_SYMBOL_STEMS = (
    "ZNF",
    "SLC",
    "TMEM",
    "CCDC",
    "FAM",
    "KLHL",
    "ANKRD",
    "LRRC",
    "RPL",
    "RPS",
    "MRPL",
    "WDR",
    "C1orf",
    "PRR",
    "ARHGAP",
    "DNAJ",
    "KIAA",
    "TRIM",
    "USP",
    "ZBTB",
    "SNX",
    "RAB",
    "ABCA",
    "ADAM",
)


def cell_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distinct cell ids of 12 lowercase hex characters.

    Parameters
    ----------
    rng : numpy.random.Generator
        The ids' random stream.
    n : int
        How many ids.

    Returns
    -------
    numpy.ndarray
        ``n`` ids in drawing order, dtype object.
    """
    ids: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        for value in rng.integers(0, 16**12, size=n - len(out), dtype=np.int64):
            name = f"{value:012x}"
            if name not in ids:
                ids.add(name)
                out.append(name)
    return np.asarray(out, dtype=object)


def ensembl_ids(rng: np.random.Generator, n: int, exclude: set[str] = frozenset()) -> np.ndarray:
    """Distinct gene ids like ``ENSG00000121410``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the id numbers.
    n : int
        How many ids.
    exclude : set of str
        Ids not to use.

    Returns
    -------
    numpy.ndarray
        ``n`` sorted ids, dtype object.
    """
    chosen: set[str] = set()
    while len(chosen) < n:
        for value in rng.integers(1_000, 300_000, size=2 * (n - len(chosen))):
            name = f"ENSG{value:011d}"
            if name not in exclude:
                chosen.add(name)
            if len(chosen) == n:
                break
    return np.asarray(sorted(chosen), dtype=object)


def protein_gene_symbol(protein: str) -> str | None:
    """The gene symbol a protein name can stand for.

    Parameters
    ----------
    protein : str
        A name from ``layout.CITE_PROTEINS``.

    Returns
    -------
    str or None
        The name itself, or None for isotype controls and complexes.
    """
    if protein in layout.ISOTYPE_CONTROLS or "-" in protein or "." in protein or protein.islower():
        return None
    return protein


def cite_gene_names(rng: np.random.Generator, n_genes: int) -> tuple[np.ndarray, np.ndarray]:
    """CITEseq input names ``ENSG..._SYMBOL`` and the genes named after a protein.

    As in the real data some genes carry the symbol of a target protein
    (CD86, TIGIT, ...); the first gene is ``ENSG00000121410_A1BG``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws ids, symbols and the protein-named genes.
    n_genes : int
        Number of input genes.

    Returns
    -------
    tuple of numpy.ndarray
        The names in column order, and per protein its gene's column or -1.
    """
    ids = ensembl_ids(rng, n_genes - 1, exclude={"ENSG00000121410"})
    ids = np.concatenate([["ENSG00000121410"], ids])
    ids = np.asarray(sorted(ids), dtype=object)
    symbols = synthetic_symbols(rng, n_genes)
    symbols[list(ids).index("ENSG00000121410")] = "A1BG"
    gene_of_protein = np.full(len(layout.CITE_PROTEINS), -1, dtype=np.int64)
    candidates = [i for i, p in enumerate(layout.CITE_PROTEINS) if protein_gene_symbol(p)]
    n_linked = min(len(candidates), max(1, n_genes // 6))
    free = np.flatnonzero(symbols != "A1BG")
    columns = rng.choice(free, size=n_linked, replace=False)
    for protein_index, column in zip(rng.choice(candidates, size=n_linked, replace=False), columns):
        symbols[column] = protein_gene_symbol(layout.CITE_PROTEINS[protein_index])
        gene_of_protein[protein_index] = column
    return gene_names(ids, symbols), gene_of_protein


def synthetic_symbols(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` gene symbols in the style of real ones (``ZNF123``, ``RPL7``, ...).

    Parameters
    ----------
    rng : numpy.random.Generator
        Random stream.
    n : int
        How many symbols.

    Returns
    -------
    numpy.ndarray
        The symbols, dtype object.
    """
    stems = rng.choice(_SYMBOL_STEMS, size=n)
    numbers = rng.permutation(np.arange(1, n * 4 + 1))[:n]
    return np.asarray([f"{s}{k}" for s, k in zip(stems, numbers)], dtype=object)


def gene_names(ids: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Kaggle's CITEseq input names ``<ensembl id>_<symbol>``.

    Parameters
    ----------
    ids, symbols : numpy.ndarray
        Ensembl ids and their symbols, in column order.

    Returns
    -------
    numpy.ndarray
        The joined names, dtype object.
    """
    return np.asarray([f"{i}_{s}" for i, s in zip(ids, symbols)], dtype=object)


def peak_layout(rng: np.random.Generator, n_peaks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ATAC peaks sorted by genome position.

    Peaks fall on the primary chromosomes in proportion to their length, and a
    few (about one in 4,000, at least two) on unplaced contigs listed last.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the peak positions and widths.
    n_peaks : int
        Number of peaks.

    Returns
    -------
    tuple of numpy.ndarray
        Names ``chr1:start-end``, chromosome and centre of each peak.
    """
    n_contig = max(2, n_peaks // 4_000)
    n_primary = n_peaks - n_contig
    names = list(CHROMOSOME_LENGTHS)
    lengths = np.asarray(list(CHROMOSOME_LENGTHS.values()), dtype=np.float64)
    per_chrom = rng.multinomial(n_primary, lengths / lengths.sum())
    contigs = rng.choice(list(CONTIG_LENGTHS), size=n_contig, replace=True)
    out_names, out_chrom, out_centre = [], [], []
    for chrom, count in list(zip(names, per_chrom)) + [(c, int((contigs == c).sum())) for c in CONTIG_LENGTHS]:
        if count == 0:
            continue
        length = CHROMOSOME_LENGTHS.get(chrom) or CONTIG_LENGTHS[chrom]
        starts = np.sort(rng.choice(max(count, length - 2_000), size=count, replace=False)) + 1
        widths = rng.integers(200, 1_800, size=count)
        out_names += [f"{chrom}:{s}-{s + w}" for s, w in zip(starts, widths)]
        out_chrom += [chrom] * count
        out_centre.append(starts + widths // 2)
    return np.asarray(out_names, dtype=object), np.asarray(out_chrom, dtype=object), np.concatenate(out_centre)
