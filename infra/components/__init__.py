"""One Pulumi component per concern; each declares its resources as its children."""
