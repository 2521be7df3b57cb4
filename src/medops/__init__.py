"""medops: from raw medical text to an approved, monitored model endpoint."""
