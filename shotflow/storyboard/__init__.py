"""The user's file -> a validated storyboard, one way down (`validate.validate_file` is the entry).

yamlsource reads the YAML with the line of every value; schema is the format (and the kinds of
schedule); fill puts the run's values into `{{ name }}` placeholders (templating finds them);
modelrules checks each shot against its model in the catalog; transitions checks the cuts;
paths says where inputs and outputs resolve; starter writes `shotflow new`'s file.
"""
