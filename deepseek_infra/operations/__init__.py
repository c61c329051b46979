"""The collection's own pyinfra operations (generators that yield commands only when state differs)."""
