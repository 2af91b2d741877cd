"""Input data that ships with installed packages (real photographs for calibration and parity)."""
