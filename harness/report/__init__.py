"""Paper-style tables and figures regenerated from MLflow runs alone (never from log text).

query (MLflow → one DataFrame row per run, and the selection with its exclusions) → tables
(pure DataFrame → DataFrame, one per paper table or figure) → figures (matplotlib) → render
(Markdown, LaTeX, CSV, PNG and index.md, each with a header that says how to regenerate it).
"""
