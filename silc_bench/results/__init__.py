"""Result files and everything that reads them: the schema, the one naming rule (ResultKey),
the audit and attribution rule, regression checks, the run summary, imported numbers,
figures and the paper tables. Nothing here runs a model."""
