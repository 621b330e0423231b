"""The blends a store keeps: their test predictions, weights and manifests."""

from __future__ import annotations

from mmscel.errors import InputError
from mmscel.store.io import array_digest, read_manifest, save_array, write_manifest
from mmscel.store.layout import StoreLayout
from mmscel.store.records import BlendRecord


class BlendShelf(StoreLayout):
    """Level-2 blends under ``blend/<name>/``: written whole, read as :class:`BlendRecord`."""

    # -- blends --------------------------------------------------------------------------------------------

    def write_blend_test(self, name: str, task: str, test) -> str:
        """Write a blend's test predictions of ``task`` under a name derived from their content; return it.

        Named by content, a blend that fails half-way never pairs an old manifest with a new test file.

        Parameters
        ----------
        name
            The blend being written.
        task
            The task of the predictions.
        test
            Blended test predictions (test cells x prediction space).

        Returns
        -------
        str
            The file's name inside the blend's folder, for the manifest.

        Raises
        ------
        InputError
            For an unknown task or a blend name that is not a plain name.
        """
        return self.write_blend_array(name, "test", task, test)

    def write_blend_array(self, name: str, kind: str, task: str, array) -> str:
        """Write one of a blend's arrays of ``task`` under a name derived from its kind and content; return it.

        Parameters
        ----------
        name
            The blend being written.
        kind
            ``test`` (its predictions) or ``cis`` (its Multiome correction maps).
        task
            The task of the array.
        array
            The array.

        Returns
        -------
        str
            The file's name inside the blend's folder, for the manifest.
        """
        filename = f"{kind}_{self._task(task)}-{array_digest(array)}.npy"
        save_array(self.blend_dir(name) / filename, array)
        return filename

    def write_blend(self, name: str, manifest: dict) -> BlendRecord:
        """Write a blend's weights and manifest, then delete its test files the manifest does not name.

        Parameters
        ----------
        name
            The blend's name.
        manifest
            The blend's manifest; its ``tasks`` give the runs, weights and test file of each task.

        Returns
        -------
        BlendRecord
            The record of the written blend.
        """
        folder = self.blend_dir(name)
        tasks = manifest["tasks"]
        write_manifest(folder / "weights.json", {task: dict(zip(t["runs"], t["weights"])) for task, t in tasks.items()})
        write_manifest(folder / "manifest.json", manifest)
        current = {t["test_file"] for t in tasks.values()}
        current |= {t["cis"]["file"] for t in tasks.values() if "file" in (t.get("cis") or {})}
        for stale in [*folder.glob("test_*.npy"), *folder.glob("cis_*.npy")]:
            if stale.name not in current:
                stale.unlink()
        return BlendRecord.from_manifest(manifest, folder)

    def blends(self) -> list[BlendRecord]:
        """Every finished blend, by name.

        Raises
        ------
        InputError
            When a blend's manifest is corrupt.
        """
        records = []
        for path in sorted((self.root / "blend").glob("*/manifest.json")):
            manifest = read_manifest(path)  # a corrupt manifest is a one-line InputError
            records.append(BlendRecord.from_manifest(manifest, path.parent))
        return records

    def blend(self, name: str) -> BlendRecord:
        """The finished blend ``name``.

        Parameters
        ----------
        name
            Which blend to read (a folder under ``blend/``).

        Returns
        -------
        BlendRecord

        Raises
        ------
        InputError
            When there is no such blend.
        """
        folder = self.blend_dir(name)
        manifest = read_manifest(folder / "manifest.json")
        if manifest is None:
            raise InputError(folder, "no such blend (manifest.json missing)")
        return BlendRecord.from_manifest(manifest, folder)

    def latest_blend(self) -> str:
        """Name of the most recently written blend.

        Raises
        ------
        InputError
            When the store holds no blend.
        """
        manifests = sorted((self.root / "blend").glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
        if not manifests:
            raise InputError(
                self.root / "blend", "no blend yet; run mmscel level2 configs/blend.yaml first (or pass --run)"
            )
        return manifests[-1].parent.name
