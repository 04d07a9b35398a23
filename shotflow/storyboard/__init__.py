"""The user's file -> a validated storyboard: YAML read with lines, placeholders, the schema."""
