"""Media files (user uploads): the private, encrypted S3 bucket the app stores them in."""
