"""Dataset viewer endpoints of the stand-in (mounted under `/datasets-server`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .state import HubState, User

PREFIX = "/datasets-server"


def infer_feature(value: Any) -> dict[str, Any]:
    """A datasets-style feature dict for one cell value (as the viewer reports it)."""
    if isinstance(value, bool):
        return {"dtype": "bool", "_type": "Value"}
    if isinstance(value, int):
        return {"dtype": "int64", "_type": "Value"}
    if isinstance(value, float):
        return {"dtype": "float64", "_type": "Value"}
    if isinstance(value, str):
        return {"dtype": "string", "_type": "Value"}
    if isinstance(value, dict):
        if value.get("_type") in ("Image", "Audio"):
            return {"_type": value["_type"]}
        return {k: infer_feature(v) for k, v in value.items()}
    if isinstance(value, list):
        return {"feature": infer_feature(value[0]) if value else {"dtype": "string", "_type": "Value"}, "_type": "List"}
    return {"dtype": "null", "_type": "Value"}


def _cell(value: Any) -> Any:
    """How the viewer serialises media cells: a URL instead of bytes."""
    if isinstance(value, dict) and value.get("_type") == "Image":
        return {"src": "https://datasets-server.example/assets/image.jpg", "height": 32, "width": 32}
    if isinstance(value, dict) and value.get("_type") == "Audio":
        return [{"src": "https://datasets-server.example/assets/audio.wav", "type": "audio/wav"}]
    return value


def viewer_routes(state: HubState, current_user: Callable[[Request], User | None]) -> list[Route]:
    def err(status: int, message: str, code: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers={"X-Error-Code": code})

    async def lookup(request: Request):
        if state.viewer_delay_s:
            await asyncio.sleep(state.viewer_delay_s)
        name = request.query_params.get("dataset", "")
        repo = state.repo(name, "dataset")
        user = current_user(request)
        if repo is None or not repo.readable_by(user):
            return None, err(
                404,
                "The dataset does not exist, or is not accessible without authentication (private or gated). "
                "Please check the spelling of the dataset name or retry with authentication.",
                "DatasetNotFoundError",
            )
        if not repo.files_readable_by(user):
            return None, err(401, "The dataset is gated and you are not authorized", "ExternalUnauthenticatedError")
        data = state.viewer.get(name)
        if data is None or not data.viewer:
            return None, err(501, "The dataset viewer is not available for this dataset.", "DatasetInBlockListError")
        return data, None

    def split_key(request: Request, data) -> tuple[tuple[str, str] | None, JSONResponse | None]:
        config = request.query_params.get("config")
        split = request.query_params.get("split")
        key = (config, split)
        if key not in data.rows:
            return None, err(404, "Not found.", "ResponseNotFound")
        return key, None

    def features(data, key) -> list[dict[str, Any]]:
        if key in data.features:
            return data.features[key]
        rows = data.rows[key]
        names: list[str] = []
        for row in rows:
            names.extend(k for k in row if k not in names)
        out = []
        for i, n in enumerate(names):
            sample = next((r[n] for r in rows if r.get(n) is not None), None)
            out.append({"feature_idx": i, "name": n, "type": infer_feature(sample)})
        return out

    def rows_payload(data, key, offset: int, length: int) -> list[dict[str, Any]]:
        rows = data.rows[key][offset : offset + length]
        out = []
        for i, row in enumerate(rows):
            cells, truncated = {}, []
            for k, v in row.items():
                v = _cell(v)
                if isinstance(v, str) and len(v) > 10_000:
                    v, truncated = v[:10_000], [*truncated, k]
                cells[k] = v
            out.append({"row_idx": offset + i, "row": cells, "truncated_cells": truncated})
        return out

    async def is_valid(request: Request) -> Response:
        _data, e = await lookup(request)
        if e:
            return e
        return JSONResponse({"preview": True, "viewer": True, "search": True, "filter": True, "statistics": True})

    async def splits(request: Request) -> Response:
        data, e = await lookup(request)
        if e:
            return e
        name = request.query_params["dataset"]
        return JSONResponse(
            {
                "splits": [{"dataset": name, "config": c, "split": s} for (c, s) in data.rows],
                "pending": [],
                "failed": [],
            }
        )

    async def first_rows(request: Request) -> Response:
        data, e = await lookup(request)
        if e:
            return e
        key, e = split_key(request, data)
        if e:
            return e
        name = request.query_params["dataset"]
        return JSONResponse(
            {
                "dataset": name,
                "config": key[0],
                "split": key[1],
                "features": features(data, key),
                "rows": rows_payload(data, key, 0, 100),
                "truncated": len(data.rows[key]) > 100,
            }
        )

    async def rows(request: Request) -> Response:
        data, e = await lookup(request)
        if e:
            return e
        key, e = split_key(request, data)
        if e:
            return e
        offset = int(request.query_params.get("offset", 0))
        length = int(request.query_params.get("length", 100))
        if length > 100:
            return err(422, "Parameter 'length' must not be greater than 100", "InvalidParameter")
        return JSONResponse(
            {
                "features": features(data, key),
                "rows": rows_payload(data, key, offset, length),
                "num_rows_total": data.num_rows.get(key, len(data.rows[key])),
                "num_rows_per_page": 100,
                "partial": False,
            }
        )

    def nbytes(rows: list[dict[str, Any]]) -> int:
        return len(json.dumps(rows, default=str))

    async def size(request: Request) -> Response:
        data, e = await lookup(request)
        if e:
            return e
        name = request.query_params["dataset"]
        split_entries = [
            {
                "dataset": name,
                "config": c,
                "split": s,
                "num_bytes_parquet_files": nbytes(r),
                "num_bytes_memory": nbytes(r),
                "num_rows": data.num_rows.get((c, s), len(r)),
                "num_columns": len(features(data, (c, s))),
            }
            for (c, s), r in data.rows.items()
        ]
        configs: dict[str, dict[str, Any]] = {}
        for sp in split_entries:
            cfg = configs.setdefault(
                sp["config"],
                {"dataset": name, "config": sp["config"], "num_bytes_parquet_files": 0, "num_bytes_memory": 0,
                 "num_rows": 0, "num_columns": sp["num_columns"]},
            )  # fmt: skip
            for k in ("num_bytes_parquet_files", "num_bytes_memory", "num_rows"):
                cfg[k] += sp[k]
        total = {
            "dataset": name,
            "num_bytes_original_files": sum(s["num_bytes_parquet_files"] for s in split_entries),
            "num_bytes_parquet_files": sum(s["num_bytes_parquet_files"] for s in split_entries),
            "num_bytes_memory": sum(s["num_bytes_memory"] for s in split_entries),
            "num_rows": sum(s["num_rows"] for s in split_entries),
        }
        return JSONResponse(
            {
                "size": {"dataset": total, "configs": list(configs.values()), "splits": split_entries},
                "pending": [],
                "failed": [],
                "partial": False,
            }
        )

    async def info(request: Request) -> Response:
        data, e = await lookup(request)
        if e:
            return e
        config = request.query_params.get("config")
        entries = {s: r for (c, s), r in data.rows.items() if c == config}
        if not entries:
            return err(404, "Not found.", "ResponseNotFound")
        first_key = (config, next(iter(entries)))
        feats = {f["name"]: f["type"] for f in features(data, first_key)}
        return JSONResponse(
            {
                "dataset_info": {
                    "description": "",
                    "config_name": config,
                    "features": feats,
                    "splits": {
                        s: {"name": s, "num_bytes": nbytes(r), "num_examples": data.num_rows.get((config, s), len(r))}
                        for s, r in entries.items()
                    },
                },
                "partial": False,
            }
        )

    return [
        Route(f"{PREFIX}/is-valid", is_valid),
        Route(f"{PREFIX}/splits", splits),
        Route(f"{PREFIX}/first-rows", first_rows),
        Route(f"{PREFIX}/rows", rows),
        Route(f"{PREFIX}/size", size),
        Route(f"{PREFIX}/info", info),
    ]
