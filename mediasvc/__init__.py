"""mediasvc: image uploads for web products, streamed, verified, resized, stripped and stored."""
