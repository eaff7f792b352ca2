"""The model contract: schema, artifact, Predictor. Framework-free (no UI, serving or HTTP)."""
