"""The rules table (shipped data, site overrides), pure verdicts over a series, applying them."""
