"""The hand-written alternative `kit bench` compares with: FastAPI + uvicorn, one file.

What a user would write instead of the kit's BentoML service, made fair: an `async` endpoint,
the same artifact loaded with the same sha256 check, the same schema validation (422 with the
same field errors), the same prediction code, the access log off, one worker. Only the web
layer differs from the service, so the ratios `kit bench` reports are about serving.

    python -m scripts.bench.fastapi_baseline --model-dir .kit/models/penguins/v1 --port 8000
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from model.errors import InvalidInput
from model.predictor import LocalPredictor


class PredictInput(BaseModel):
    records: list[Any] = Field(max_length=1000)


def create_app(model_dir: Path) -> FastAPI:
    predictor = LocalPredictor(model_dir)  # loaded before the server accepts connections
    schema = predictor.schema
    app = FastAPI(title=f"{predictor.manifest.name} (FastAPI baseline)")

    @app.get("/readyz")
    async def readyz() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/predict")
    async def predict(body: PredictInput) -> JSONResponse:
        try:
            clean = schema.validate_records(body.records)
        except InvalidInput as exc:
            errors = [error.to_json() for error in exc.errors]
            return JSONResponse({"error": str(exc), "errors": errors}, status_code=422)
        predictions = predictor.predict_valid(clean)  # with warnings, as the service
        return JSONResponse({"predictions": [p.to_json() for p in predictions]})

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="FastAPI baseline for `kit bench`")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    app = create_app(args.model_dir)
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
