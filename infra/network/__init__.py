"""The VPC, its subnets and routes, and the security groups between the tiers."""
