//! hostPath paths as the rules compare them.

/// Normalises an absolute path lexically; `None` when it is not absolute.
pub fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether `path` (normalised) is `allowed` or below it.
pub fn covers(allowed: &str, path: &str) -> bool {
    path == allowed || path.strip_prefix(allowed).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let cases = [
            ("/dev/bus/usb", Some("/dev/bus/usb")),
            ("/dev/bus/usb/", Some("/dev/bus/usb")),
            ("//dev/bus/usb", Some("/dev/bus/usb")),
            ("/dev//bus/./usb", Some("/dev/bus/usb")),
            ("/dev/bus/usb/../../etc", Some("/dev/etc")),
            ("/dev/bus/usb/001/002", Some("/dev/bus/usb/001/002")),
            ("/../..", Some("/")),
            ("/", Some("/")),
            ("dev/bus/usb", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn covers_only_the_path_and_below() {
        assert!(covers("/dev/bus/usb", "/dev/bus/usb"));
        assert!(covers("/dev/bus/usb", "/dev/bus/usb/001"));
        assert!(!covers("/dev/bus/usb", "/dev/bus/usbx"));
        assert!(!covers("/dev/bus/usb", "/dev/bus"));
        assert!(!covers("/dev/bus/usb", "/"));
    }
}
