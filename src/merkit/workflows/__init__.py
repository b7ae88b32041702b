"""The workflows behind the command line: one module per user task.

Each composes the stages below it (data, features, protocols, results) into one call
and returns a result object that carries what the CLI prints, tables included; nothing
here imports :mod:`merkit.cli`.

* :mod:`~merkit.workflows.databases` - databases on disk as every workflow reads them
  (labels, clips left out, the feature cache folder); ``merkit datasets``.
* :mod:`~merkit.workflows.extract` - ``merkit extract``: clips -> one feature file.
* :mod:`~merkit.workflows.cdmer` - ``merkit cdmer``: the CDMER tasks and their tables.
* :mod:`~merkit.workflows.demo` - ``merkit demo``: synthetic databases end to end.
* :mod:`~merkit.workflows.train` - ``merkit train``: deep models under a protocol.
* :mod:`~merkit.workflows.predict` - ``merkit predict``: one clip with trained weights.
* :mod:`~merkit.workflows.report` - ``merkit report``: the HTML / Markdown report.
* :mod:`~merkit.workflows.synth` - ``merkit synth``: synthetic databases.
* :mod:`~merkit.workflows.agreement` - ``merkit agreement``: Fleiss' kappa of a sheet.
"""
