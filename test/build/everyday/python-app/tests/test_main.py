import unittest

from app.main import Handler


class HandlerTest(unittest.TestCase):
    def test_has_get(self):
        self.assertTrue(hasattr(Handler, "do_GET"))


if __name__ == "__main__":
    unittest.main()
