"""Pure helpers of the app: figure builders (DataFrame -> plotly Figure), summaries,
settings parsing, path checks; plus the gallery and the progress reporter."""
