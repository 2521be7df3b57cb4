"""The text classifier medops trains and serves: a mean-pooled encoder plus a linear head."""
