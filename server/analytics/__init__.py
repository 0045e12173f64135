"""Analytics over stored history: anomaly baselines and the daily report."""
