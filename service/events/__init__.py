"""Events: what changed, told to every organization that may see it, in the same
transaction as the change (an outbox), read from a feed or pushed to webhooks."""
