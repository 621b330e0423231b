"""Errors that the command line reports as one line with exit code 2."""


class InputError(Exception):
    """Bad input from the user: a missing or corrupt file, a wrong shape, a bad id.

    The message names the file or key and what is wrong, on one line. The CLI
    prints it without a traceback and exits with code 2.

    Parameters
    ----------
    where
        The file, key or object at fault (converted with ``str``).
    problem
        What is wrong with it.
    """

    def __init__(self, where: object, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")

    def __reduce__(self):
        # rebuilt from both fields, so that an error raised in another process (a Dask worker) arrives whole
        return type(self), (self.where, self.problem)
