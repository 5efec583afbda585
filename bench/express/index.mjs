// The seed guide's Express app (its TypeScript source as plain JavaScript): the baseline
// that bench/app_throughput.py measures the Python app against. One line is added: the
// seed's listing never mounts its router, so both routes would answer 404.
import express, { Router } from "express";

const app = express();
const PORT = process.env.PORT ?? 8000;

// Define router
const router = Router();

router.get("/", (req, res) => res.json({ message: "Hello from Docker" }));

router.get("/health", (req, res) =>
  res.status(200).json({ message: "Everything is good here 03" })
);

app.use(router); // added: missing from the seed

// Start server
app.listen(PORT, () => console.log(`Server Started on PORT ${PORT}`));
