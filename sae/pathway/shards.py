"""Sparse SAE activations on disk: CSR rows in safetensors shards, with a Parquet index.

The authors stored 50 games of pathway activations as one 2.7 GB JSON of dense vectors. Here a
row is one (decision, layer): the active features' ids (int32) and values (float32), so the size
follows the number of active features, not d_sae.

    DIR/shard-00000.safetensors   offsets (rows+1, int64), indices (nnz, int32), values (nnz, float32)
    DIR/index.parquet             one line per row: game_id, outcome, group, round, step, to_end, layer,
                                  shard, row, n_active
    DIR/meta.json                 layers, d_sae per layer, anything the writer was given

Within a shard the rows are grouped by layer, so reading one layer slices each shard
(`safe_open(...).get_slice`) instead of loading it whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch


class ShardWriter:
    """Buffers sparse rows and writes a shard every `rows_per_shard` rows (bounded memory)."""

    def __init__(self, out_dir: Path, rows_per_shard: int = 8192):
        self.out_dir = out_dir
        self.rows_per_shard = rows_per_shard
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in list(out_dir.glob("shard-*.safetensors")) + [out_dir / "index.parquet"]:
            old.unlink(missing_ok=True)  # a rerun replaces, never mixes
        self._buf: list[tuple[list[dict], torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._buffered = 0
        self._index: list[dict] = []
        self.shards = 0
        self.bytes = 0

    def add(self, rows: list[dict], acts: torch.Tensor) -> None:
        """`acts` (len(rows), d_sae) dense activations of one layer; `rows` their index fields."""
        mask = acts != 0
        counts = mask.sum(1).cpu()
        cols = mask.nonzero()[:, 1].to(torch.int32).cpu()  # row-major: grouped by row, in order
        vals = acts[mask].float().cpu()
        self._buf.append((rows, counts, cols, vals))
        self._buffered += len(rows)
        if self._buffered >= self.rows_per_shard:
            self.flush()

    def flush(self) -> None:
        if not self._buffered:
            return
        from safetensors.torch import save_file

        # group by layer inside the shard so one layer is a contiguous row range
        self._buf.sort(key=lambda b: b[0][0]["layer"] if b[0] else 0)
        counts = torch.cat([b[1] for b in self._buf])
        offsets = torch.zeros(counts.numel() + 1, dtype=torch.int64)
        offsets[1:] = counts.cumsum(0)
        tensors = {
            "offsets": offsets,
            "indices": torch.cat([b[2] for b in self._buf]),
            "values": torch.cat([b[3] for b in self._buf]),
        }
        file = self.out_dir / f"shard-{self.shards:05d}.safetensors"
        save_file(tensors, str(file))
        self.bytes += file.stat().st_size
        row = 0
        for rows, cnt, _, _ in self._buf:
            for r, n in zip(rows, cnt.tolist(), strict=True):
                self._index.append({**r, "shard": self.shards, "row": row, "n_active": n})
                row += 1
        self.shards += 1
        self._buf, self._buffered = [], 0

    def close(self, meta: dict) -> pd.DataFrame:
        """Write the last shard, the index and meta.json; return the index."""
        self.flush()
        index = pd.DataFrame(self._index)
        index.to_parquet(self.out_dir / "index.parquet", index=False)
        (self.out_dir / "meta.json").write_text(json.dumps({**meta, "shards": self.shards}, indent=2))
        return index


class ShardStore:
    """Read a shard directory back: the index, and one layer as a scipy CSR matrix."""

    def __init__(self, directory: Path | str):
        self.dir = Path(directory)
        self.index = pd.read_parquet(self.dir / "index.parquet")
        self.meta = json.loads((self.dir / "meta.json").read_text())

    def d_sae(self, layer: int) -> int:
        return int(self.meta["d_sae"][str(layer)])

    def layer(self, layer: int):
        """(index rows of `layer`, CSR matrix rows x d_sae) in the index's order."""
        from safetensors import safe_open
        from scipy import sparse

        rows = self.index[self.index["layer"] == layer].sort_values(["shard", "row"])
        indptr, indices, values = [0], [], []
        for shard, part in rows.groupby("shard", sort=True):
            lo, hi = int(part["row"].min()), int(part["row"].max()) + 1
            if hi - lo != len(part):
                raise ValueError(f"{self.dir}: layer {layer} rows are not contiguous in shard {shard}")
            with safe_open(str(self.dir / f"shard-{shard:05d}.safetensors"), framework="np") as f:
                offsets = f.get_slice("offsets")[lo : hi + 1]
                a, b = int(offsets[0]), int(offsets[-1])
                indices.append(f.get_slice("indices")[a:b])
                values.append(f.get_slice("values")[a:b])
            indptr.extend((offsets[1:] - a + indptr[-1]).tolist())
        n = len(rows)
        matrix = sparse.csr_matrix(
            (
                np.concatenate(values) if values else np.zeros(0, np.float32),
                np.concatenate(indices) if indices else np.zeros(0, np.int32),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(n, self.d_sae(layer)),
        )
        return rows.reset_index(drop=True), matrix

    def dense(self, game_id: str, round: int, layer: int) -> np.ndarray:
        """The full activation vector of one decision at one layer."""
        rows, matrix = self.layer(layer)
        hit = np.flatnonzero((rows["game_id"] == game_id).to_numpy() & (rows["round"] == round).to_numpy())
        if hit.size != 1:
            raise KeyError(f"no row for game {game_id!r} round {round} layer {layer}")
        return matrix[hit[0]].toarray()[0]
