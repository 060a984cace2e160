"""A local S3-compatible sandbox (moto server) and a realistic replica of the bucket."""
