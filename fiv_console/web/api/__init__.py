"""The REST API: the route table (roles, inputs, answers) and one module of operations per resource."""
