"""Inference nodes (issue #5): not built yet; the gateway issue lands first."""
