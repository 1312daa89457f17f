"""The A2A broker (issue #4): not built yet; the gateway issue lands first."""
