"""Who may call the platform: operator roles, operator tokens, device credentials."""
