-- A destination's name is unique per owner and category, as in GitLab: its legacy API keeps
-- each category in a table of its own, and its unified model scopes name uniqueness to the
-- category (group: group and category; instance: category).

DROP INDEX destinations_group_name_key;
DROP INDEX destinations_instance_name_key;
CREATE UNIQUE INDEX destinations_group_name_key    ON destinations (namespace_key, category, name) WHERE scope = 'group';
CREATE UNIQUE INDEX destinations_instance_name_key ON destinations (category, name) WHERE scope = 'instance';
