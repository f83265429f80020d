module example.com/demo

go 1.16

require (
	github.com/gin-gonic/gin v1.6.0
	golang.org/x/net v0.7.0
)
